/* Facecast's CPU render kernels: the fused engine's march, field lookups and compositing
 * as three loops over rays or samples, instead of dozens of whole-frame tensor passes.
 *
 * Built on first use by ``native.py`` (the system C compiler, OpenMP when it has it; the
 * process's OpenMP runtime is PyTorch's, so these loops share its thread pool) and called
 * through ctypes with the data pointers of contiguous tensors. Each function computes
 * exactly what the fused engine's tensor code computes (``engine.march``,
 * ``lattice_corners`` / ``plane_corners`` with their gathers, ``composite``), in the same
 * float32 operations per element; only summation orders differ. No atomics, no shared
 * writes: every output element is written by one iteration, so results do not depend on
 * the thread count. Built with -ffp-contract=off: a multiply-add is fused exactly where
 * the tensor code fuses it (``torch.addcmul`` rounds once: ``fmaf`` here), so the march
 * picks the same grid cells bit for bit.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define FC_VERSION 5

int fc_version(void) { return FC_VERSION; }

/* ---- march --------------------------------------------------------------------------
 * Rays [L N] (layer l's rays are rows [l N, (l + 1) N)), each layer with its grid:
 *   lo, scale (cells per metre), blo / bhi (tight box around occupied cells): [L, 3] float
 *   res: [L] int32, base: [L] int64 first cell of the layer's grid in ``occ``
 * Outputs per ray: first occupied step (0 when none, as argmax), near, span, step
 * length in cm, the band's occupancy bits, and ``offsets`` [L N + 1]: the exclusive
 * prefix sum of occupied band samples. Returns the number of samples.
 */
int64_t fc_march(int64_t n_rays, int64_t n_per_layer, const float *o, const float *d,
                 const float *lo, const float *scale, const int32_t *res,
                 const int64_t *base, const float *blo, const float *bhi,
                 const uint8_t *occ, int32_t n_steps, int32_t band,
                 int32_t *first, float *near_out, float *span_out, float *delta_out,
                 uint64_t *mask_out, int64_t *offsets, int32_t n_threads)
{
    const float m = (float)n_steps;
#pragma omp parallel for schedule(dynamic, 1024) num_threads(n_threads)
    for (int64_t i = 0; i < n_rays; i++) {
        const int64_t l = i / n_per_layer;
        const float *ol = o + 3 * i, *dl = d + 3 * i;
        float nr = -INFINITY, fr = INFINITY;
        for (int a = 0; a < 3; a++) {
            float dv = fabsf(dl[a]) < 1e-9f ? 1e-9f : dl[a];
            float inv = 1.0f / dv;
            float t0 = (blo[3 * l + a] - ol[a]) * inv, t1 = (bhi[3 * l + a] - ol[a]) * inv;
            float tn = fminf(t0, t1), tf = fmaxf(t0, t1);
            if (tn > nr) nr = tn;
            if (tf < fr) fr = tf;
        }
        if (nr < 0.0f) nr = 0.0f;
        first[i] = 0;
        mask_out[i] = 0;
        near_out[i] = nr;
        float span = fr - nr;
        span_out[i] = span;
        delta_out[i] = 0.0f;
        if (!(fr > nr)) {
            offsets[i + 1] = 0;
            continue;
        }
        float norm = sqrtf(dl[0] * dl[0] + dl[1] * dl[1] + dl[2] * dl[2]);
        delta_out[i] = span / m * norm * 100.0f;
        const int32_t r = res[l], top = r - 1;
        const int64_t r2 = (int64_t)r * r;
        float a0[3], b0[3];
        for (int a = 0; a < 3; a++) {
            a0[a] = (ol[a] - lo[3 * l + a]) * scale[3 * l + a];
            b0[a] = dl[a] * scale[3 * l + a];
        }
        const uint8_t *g = occ + base[l];
        int32_t f = -1;
        uint64_t bits = 0;
        for (int32_t k = 0; k < n_steps; k++) {
            float t = fmaf(span, ((float)k + 0.5f) / m, nr);
            int32_t gi[3];
            for (int a = 0; a < 3; a++) {
                float c = fmaf(t, b0[a], a0[a]);
                int32_t v = c < 0.0f ? 0 : (c >= (float)top ? top : (int32_t)c);
                gi[a] = v;
            }
            uint8_t hit = g[gi[0] * r2 + (int64_t)gi[1] * r + gi[2]];
            if (f < 0) {
                if (!hit) continue;
                f = k;
            }
            if (hit) bits |= (uint64_t)1 << (k - f);
            if (k - f + 1 >= band) break;
        }
        if (f >= 0) {
            first[i] = f;
            mask_out[i] = bits;
        }
        offsets[i + 1] = __builtin_popcountll(bits);
    }
    offsets[0] = 0;
    for (int64_t i = 0; i < n_rays; i++) offsets[i + 1] += offsets[i];
    return offsets[n_rays];
}

/* The band's occupied samples' points x = o + t d [S, 3], in ray order. */
void fc_samples(int64_t n_rays, const float *o, const float *d, const int32_t *first,
                const float *near_in, const float *span_in, const uint64_t *mask,
                const int64_t *offsets, int32_t n_steps, float *x, int32_t n_threads)
{
    const float m = (float)n_steps;
#pragma omp parallel for schedule(dynamic, 1024) num_threads(n_threads)
    for (int64_t i = 0; i < n_rays; i++) {
        uint64_t bits = mask[i];
        int64_t s = offsets[i];
        while (bits) {
            int j = __builtin_ctzll(bits);
            bits &= bits - 1;
            float t = fmaf(span_in[i], ((float)(first[i] + j) + 0.5f) / m, near_in[i]);
            for (int a = 0; a < 3; a++) x[3 * s + a] = fmaf(t, d[3 * i + a], o[3 * i + a]);
            s++;
        }
    }
}

/* ---- field lookups ------------------------------------------------------------------
 * Per sample: the attention lattice's trilinear lookup (optional), the offset it gives
 * the point, then every tri-plane's bilinear lookup, written as one row of the first
 * layer's input: ``out`` [S, out_stride].
 *
 * Lattice (``engine.Lattice``, zero-padded table [rows, lat_c], several frames' tables
 * stacked: ``lat_row`` [S] is each sample's frame's first row, or NULL): per axis scale, shift,
 * top (last padded index) and top1 (last lower corner); strides (x, y, z) and the 8
 * corners' row offsets (z, y, x major to minor). Its channels [0, 3) offset the point;
 * channels [3, 3 + app_n) are copied to out columns [app_col, app_col + app_n).
 * Planes (``engine.PlaneSet``): per plane its channels-last table, channel count, size
 * R, first row, column and row axes, and first output column. ``off_out`` [S, 3] (or
 * NULL) receives the lattice offsets.
 */
static inline void plane_lookup(const float *restrict table, int32_t c, int32_t r,
                                int64_t row0, float u, float v, float *restrict dst)
{
    const float half = (float)r * 0.5f, off = ((float)r - 1.0f) * 0.5f;
    float pu = fmaf(u, half, off), pv = fmaf(v, half, off);
    pu = pu < 0.0f ? 0.0f : (pu > (float)(r - 1) ? (float)(r - 1) : pu);
    pv = pv < 0.0f ? 0.0f : (pv > (float)(r - 1) ? (float)(r - 1) : pv);
    float iu = fminf(floorf(pu), (float)(r - 2)), iv = fminf(floorf(pv), (float)(r - 2));
    float wu = pu - iu, wv = pv - iv;
    float w00 = (1.0f - wv) * (1.0f - wu), w01 = (1.0f - wv) * wu;
    float w10 = wv * (1.0f - wu), w11 = wv * wu;
    int64_t lin = row0 + (int64_t)iu + (int64_t)iv * r;
    const float *restrict t00 = table + lin * c, *restrict t01 = t00 + c;
    const float *restrict t10 = table + (lin + r) * c, *restrict t11 = t10 + c;
    if (c == 8) {
        for (int k = 0; k < 8; k++)
            dst[k] = w00 * t00[k] + w01 * t01[k] + w10 * t10[k] + w11 * t11[k];
    } else if (c == 16) {
        for (int k = 0; k < 16; k++)
            dst[k] = w00 * t00[k] + w01 * t01[k] + w10 * t10[k] + w11 * t11[k];
    } else {
        for (int k = 0; k < c; k++)
            dst[k] = w00 * t00[k] + w01 * t01[k] + w10 * t10[k] + w11 * t11[k];
    }
}

void fc_features(int64_t n, const float *x, const int32_t *lat_row,
                 const float *lat, int32_t lat_c, const float *lat_scale,
                 const float *lat_shift, const float *lat_top, const float *lat_top1,
                 const int32_t *lat_stride, const int32_t *lat_corner,
                 int32_t app_n, int32_t app_col,
                 const float *box_lo, const float *box_span,
                 int32_t n_planes, const int64_t *tables, const int32_t *plane_c,
                 const int32_t *plane_r, const int64_t *plane_row0,
                 const int32_t *plane_u, const int32_t *plane_v, const int32_t *plane_col,
                 float *out, int64_t out_stride, float *off_out, int32_t n_threads)
{
#pragma omp parallel for schedule(static) num_threads(n_threads)
    for (int64_t s = 0; s < n; s++) {
        const float *xs = x + 3 * s;
        float *dst = out + s * out_stride;
        float p[3] = {xs[0], xs[1], xs[2]};
        if (lat) {
            float w[3], side[3][2];
            int64_t lin = lat_row ? lat_row[s] : 0;
            for (int a = 0; a < 3; a++) {
                float g = fmaf(xs[a], lat_scale[a], lat_shift[a]);
                g = g < 0.0f ? 0.0f : (g > lat_top[a] ? lat_top[a] : g);
                float i0 = fminf(floorf(g), lat_top1[a]);
                w[a] = g - i0;
                side[a][0] = 1.0f - w[a];
                side[a][1] = w[a];
                lin += (int64_t)i0 * lat_stride[a];
            }
            float acc[64];
            for (int k = 0; k < lat_c; k++) acc[k] = 0.0f;
            for (int c = 0; c < 8; c++) {
                int dz = c >> 2, dy = (c >> 1) & 1, dx = c & 1;
                float wc = (side[0][dx] * side[1][dy]) * side[2][dz];
                const float *row = lat + (lin + lat_corner[c]) * lat_c;
                for (int k = 0; k < lat_c; k++) acc[k] += wc * row[k];
            }
            for (int a = 0; a < 3; a++) p[a] = xs[a] + acc[a];
            if (off_out)
                for (int a = 0; a < 3; a++) off_out[3 * s + a] = acc[a];
            for (int k = 0; k < app_n; k++) dst[app_col + k] = acc[3 + k];
        }
        float xn[3];
        for (int a = 0; a < 3; a++) xn[a] = (p[a] - box_lo[a]) / box_span[a] * 2.0f - 1.0f;
        for (int q = 0; q < n_planes; q++)
            plane_lookup((const float *)(intptr_t)tables[q], plane_c[q], plane_r[q],
                         plane_row0[q], xn[plane_u[q]], xn[plane_v[q]], dst + plane_col[q]);
    }
}

/* ---- compositing --------------------------------------------------------------------
 * Emission-absorption along each ray's band from its samples' raw field outputs ``raw``
 * [S, 4] (density logit, rgb logits) -> ``out`` [n, 5] premultiplied rgb, alpha, depth.
 * Activations as the fields apply them: density softplus(raw - 1) per cm, times the
 * head's fade-in above its box's floor (rays [0, n_fade): clamp((y - fade_lo) / fade,
 * 0, 1) at the sample's point x), rgb sigmoid. A sample in a block of ``block`` steps
 * that starts with transmittance <= early_stop (after the first block) is dropped, as
 * the reference's early termination drops it.
 */
static inline float softplus(float v)  /* torch.nn.functional.softplus (threshold 20) */
{
    return v > 20.0f ? v : log1pf(expf(v));
}

static inline float sigmoid(float v) { return 1.0f / (1.0f + expf(-v)); }

void fc_composite(int64_t n_rays, const int32_t *first, const float *near_in,
                  const float *span_in, const float *delta, const uint64_t *mask,
                  const int64_t *offsets, const float *raw, const float *x, int64_t n_fade,
                  float fade_lo, float fade, int32_t n_steps, int32_t band, int32_t block,
                  float early_stop, float *out, int32_t n_threads)
{
    const float m = (float)n_steps;
#pragma omp parallel for schedule(dynamic, 1024) num_threads(n_threads)
    for (int64_t i = 0; i < n_rays; i++) {
        float *o5 = out + 5 * i;
        uint64_t bits = mask[i];
        if (!bits) {
            for (int k = 0; k < 5; k++) o5[k] = 0.0f;
            continue;
        }
        int64_t s = offsets[i];
        float trans = 1.0f, block_trans = 1.0f, r = 0.0f, g = 0.0f, b = 0.0f, acc = 0.0f,
              dep = 0.0f;
        for (int j = 0; j < band; j++) {
            if (j % block == 0) block_trans = trans;
            if (!((bits >> j) & 1)) continue;  /* alpha 0: the product gains 1 + 1e-10 = 1 */
            const float *v = raw + 4 * s;
            float sigma = softplus(v[0] - 1.0f);
            if (i < n_fade) {
                float f = (x[3 * s + 1] - fade_lo) / fade;
                sigma = sigma * (f < 0.0f ? 0.0f : (f > 1.0f ? 1.0f : f));
            }
            s++;
            float alpha = 1.0f - expf(-sigma * delta[i]);
            int live = j < block || block_trans > early_stop;
            float w = live ? trans * alpha : 0.0f;
            int k = first[i] + j;
            if (k > n_steps - 1) k = n_steps - 1;
            float t = fmaf(span_in[i], ((float)k + 0.5f) / m, near_in[i]);
            r += w * sigmoid(v[1]);
            g += w * sigmoid(v[2]);
            b += w * sigmoid(v[3]);
            acc += w;
            dep += w * t;
            trans = trans * (1.0f - alpha + 1e-10f);
        }
        o5[0] = r;
        o5[1] = g;
        o5[2] = b;
        o5[3] = acc;
        o5[4] = acc > 1e-4f ? dep / fmaxf(acc, 1e-6f) : 0.0f;
    }
}

/* The range [lo, hi) of ``rows`` this OpenMP thread owns (all of them without OpenMP). */
static inline void owned_rows(int64_t rows, int64_t *lo, int64_t *hi)
{
    int nt = 1, me = 0;
#ifdef _OPENMP
    nt = omp_get_num_threads();
    me = omp_get_thread_num();
#endif
    *lo = rows * me / nt;
    *hi = rows * (me + 1) / nt;
}

/* ---- the weighted gather's gradients (training) -------------------------------------
 * out[n] = sum_k w[n, k] table[idx[n, k]] (table [T, C], idx / w [N, K]); given the
 * output's gradient ``grad`` [N, C]:
 *   g_w[n, k] = table[idx[n, k]] . grad[n]                 (when g_w is not NULL)
 *   g_table[t] = sum over (n, k) with idx[n, k] = t of w[n, k] grad[n]   (when not NULL)
 * The table's gradient is a scatter-add without atomics: each thread owns a range of
 * table rows and walks all (n, k) in order, so every row sums its terms in the same
 * order whatever the thread count (bit-identical results). ``g_table`` is overwritten.
 */
void fc_gather_backward(int64_t n, int32_t k, int64_t t_rows, int32_t c,
                        const float *restrict table, const int32_t *restrict idx,
                        const float *restrict w, const float *restrict grad,
                        float *restrict g_table, float *restrict g_w, int32_t n_threads)
{
    if (g_w) {
#pragma omp parallel for schedule(static) num_threads(n_threads)
        for (int64_t i = 0; i < n; i++) {
            const float *g = grad + i * c;
            for (int32_t j = 0; j < k; j++) {
                const float *row = table + (int64_t)idx[i * k + j] * c;
                float dot = 0.0f;
                for (int32_t ch = 0; ch < c; ch++) dot += row[ch] * g[ch];
                g_w[i * k + j] = dot;
            }
        }
    }
    if (!g_table) return;
#pragma omp parallel num_threads(n_threads)
    {
        int64_t lo, hi;
        owned_rows(t_rows, &lo, &hi);
        memset(g_table + lo * c, 0, (size_t)(hi - lo) * c * sizeof(float));
        for (int64_t i = 0; i < n; i++) {
            const float *g = grad + i * c;
            for (int32_t j = 0; j < k; j++) {
                const int64_t r = idx[i * k + j];
                if (r < lo || r >= hi) continue;
                const float wv = w[i * k + j];
                float *dst = g_table + r * c;
                for (int32_t ch = 0; ch < c; ch++) dst[ch] += wv * g[ch];
            }
        }
    }
}

/* dot(g, (1 - wv)(t01 - t00) + wv (t11 - t10)) and the same along v, over c channels
 * (c = 8 and 16 unrolled for the vectoriser). */
#define FC_DUV(C)                                                                       \
    for (int k = 0; k < (C); k++) {                                                     \
        du += g[k] * ((1.0f - wv) * (t01[k] - t00[k]) + wv * (t11[k] - t10[k]));       \
        dv += g[k] * ((1.0f - wu) * (t10[k] - t00[k]) + wu * (t11[k] - t01[k]));       \
    }
static inline void bilinear_duv(const float *restrict t00, const float *restrict t01,
                                const float *restrict t10, const float *restrict t11,
                                const float *restrict g, int32_t c, float wu, float wv,
                                float *du_out, float *dv_out)
{
    float du = 0.0f, dv = 0.0f;
    if (c == 8) {
        FC_DUV(8)
    } else if (c == 16) {
        FC_DUV(16)
    } else {
        FC_DUV(c)
    }
    *du_out = du;
    *dv_out = dv;
}

/* dst[k] += w g[k] over c channels (8 and 16 unrolled). */
static inline void axpy(float *restrict dst, const float *restrict g, float w, int32_t c)
{
    if (c == 8) {
        for (int k = 0; k < 8; k++) dst[k] += w * g[k];
    } else if (c == 16) {
        for (int k = 0; k < 16; k++) dst[k] += w * g[k];
    } else {
        for (int k = 0; k < c; k++) dst[k] += w * g[k];
    }
}

/* ---- the field lookups' gradients (training) ----------------------------------------
 * ``fc_features``' backward, given the gradients of its output ``g_feat`` [S, out_stride]
 * and of the lattice offsets it applied ``g_off`` [S, 3] (or NULL):
 *   g_tables[q]: each plane's table (planes of one table share it: same pointer), and
 *   g_lat: the lattice table; both overwritten (zeroed first);
 *   the offsets' share flows through the planes' bilinear weights (the derivative
 *   ``torch`` takes: through clamp where inside its bounds, not through floor).
 * Pass 1 (parallel over samples) recomputes the lookups, keeps every corner's row and
 * weight (``pl_row`` [S, P] int64, ``pl_w`` [S, P, 4]; ``lat_lin`` [S], ``lat_w`` [S, 8],
 * ``g_c`` [S, lat_c] the gradient of each sample's lattice value); pass 2 scatter-adds:
 * threads own ranges of rows and walk the samples in order (a fixed summation order per
 * row: the same result at any thread count). The points x themselves get no gradient
 * (the caller uses this only when they need none).
 */
void fc_features_backward(int64_t n, const float *x, const int32_t *lat_row,
                          const float *lat, int32_t lat_c, int64_t lat_rows,
                          const float *lat_scale, const float *lat_shift, const float *lat_top,
                          const float *lat_top1, const int32_t *lat_stride,
                          const int32_t *lat_corner, int32_t app_n, int32_t app_col,
                          const float *box_lo, const float *box_span,
                          int32_t n_planes, const int64_t *tables, const int32_t *plane_c,
                          const int32_t *plane_r, const int64_t *plane_row0,
                          const int32_t *plane_u, const int32_t *plane_v,
                          const int32_t *plane_col, const int64_t *table_rows,
                          const float *g_feat, int64_t out_stride, const float *g_off,
                          const int64_t *g_tables, float *g_lat, int64_t *pl_row, float *pl_w,
                          int64_t *lat_lin, float *lat_w, float *g_c, int32_t n_threads)
{
    const int32_t np = n_planes;
#pragma omp parallel for schedule(static) num_threads(n_threads)
    for (int64_t s = 0; s < n; s++) {
        const float *xs = x + 3 * s;
        const float *gf = g_feat + s * out_stride;
        float p[3] = {xs[0], xs[1], xs[2]};
        if (lat) {
            int64_t lin = lat_row ? lat_row[s] : 0;
            float side[3][2];
            for (int a = 0; a < 3; a++) {
                float g = fmaf(xs[a], lat_scale[a], lat_shift[a]);
                g = g < 0.0f ? 0.0f : (g > lat_top[a] ? lat_top[a] : g);
                float i0 = fminf(floorf(g), lat_top1[a]);
                side[a][0] = 1.0f - (g - i0);
                side[a][1] = g - i0;
                lin += (int64_t)i0 * lat_stride[a];
            }
            lat_lin[s] = lin;
            float acc[3] = {0.0f, 0.0f, 0.0f};
            for (int c = 0; c < 8; c++) {
                int dz = c >> 2, dy = (c >> 1) & 1, dx = c & 1;
                float wc = (side[0][dx] * side[1][dy]) * side[2][dz];
                lat_w[8 * s + c] = wc;
                const float *row = lat + (lin + lat_corner[c]) * lat_c;
                for (int k = 0; k < 3; k++) acc[k] += wc * row[k];
            }
            for (int a = 0; a < 3; a++) p[a] = xs[a] + acc[a];
        }
        float xn[3], g_xn[3] = {0.0f, 0.0f, 0.0f};
        for (int a = 0; a < 3; a++) xn[a] = (p[a] - box_lo[a]) / box_span[a] * 2.0f - 1.0f;
        for (int q = 0; q < np; q++) {
            const int32_t c = plane_c[q], r = plane_r[q];
            const float half = (float)r * 0.5f, off = ((float)r - 1.0f) * 0.5f;
            float pu = fmaf(xn[plane_u[q]], half, off), pv = fmaf(xn[plane_v[q]], half, off);
            int in_u = pu >= 0.0f && pu <= (float)(r - 1);
            int in_v = pv >= 0.0f && pv <= (float)(r - 1);
            pu = pu < 0.0f ? 0.0f : (pu > (float)(r - 1) ? (float)(r - 1) : pu);
            pv = pv < 0.0f ? 0.0f : (pv > (float)(r - 1) ? (float)(r - 1) : pv);
            float iu = fminf(floorf(pu), (float)(r - 2)), iv = fminf(floorf(pv), (float)(r - 2));
            float wu = pu - iu, wv = pv - iv;
            int64_t l0 = plane_row0[q] + (int64_t)iu + (int64_t)iv * r;
            pl_row[s * np + q] = l0;
            float *w4 = pl_w + 4 * (s * np + q);
            w4[0] = (1.0f - wv) * (1.0f - wu);
            w4[1] = (1.0f - wv) * wu;
            w4[2] = wv * (1.0f - wu);
            w4[3] = wv * wu;
            if (!lat) continue;
            const float *table = (const float *)(intptr_t)tables[q];
            const float *t00 = table + l0 * c, *t01 = t00 + c;
            const float *t10 = table + (l0 + r) * c, *t11 = t10 + c;
            float du, dv;
            bilinear_duv(t00, t01, t10, t11, gf + plane_col[q], c, wu, wv, &du, &dv);
            if (in_u) g_xn[plane_u[q]] += du * half;
            if (in_v) g_xn[plane_v[q]] += dv * half;
        }
        if (lat) {
            float *gs = g_c + s * lat_c;
            for (int a = 0; a < 3; a++)
                gs[a] = g_xn[a] / box_span[a] * 2.0f + (g_off ? g_off[3 * s + a] : 0.0f);
            for (int k = 0; k < app_n; k++) gs[3 + k] = gf[app_col + k];
            for (int k = 3 + app_n; k < lat_c; k++) gs[k] = 0.0f;
        }
    }
#pragma omp parallel num_threads(n_threads)
    {
        int64_t lo, hi;
        for (int q = 0; q < np; q++) {
            const int32_t c = plane_c[q], r = plane_r[q];
            owned_rows(table_rows[q], &lo, &hi);
            float *gt = (float *)(intptr_t)g_tables[q];
            int first_of_table = 1;
            for (int e = 0; e < q; e++)
                if (g_tables[e] == g_tables[q]) first_of_table = 0;
            if (first_of_table) memset(gt + lo * c, 0, (size_t)(hi - lo) * c * sizeof(float));
            for (int64_t s = 0; s < n; s++) {
                const int64_t l0 = pl_row[s * np + q];
                if (l0 + r + 1 < lo || l0 >= hi) continue;
                const int64_t rows[4] = {l0, l0 + 1, l0 + r, l0 + r + 1};
                const float *w4 = pl_w + 4 * (s * np + q);
                const float *g = g_feat + s * out_stride + plane_col[q];
                for (int k4 = 0; k4 < 4; k4++)
                    if (rows[k4] >= lo && rows[k4] < hi) axpy(gt + rows[k4] * c, g, w4[k4], c);
            }
        }
        if (lat) {
            owned_rows(lat_rows, &lo, &hi);
            memset(g_lat + lo * lat_c, 0, (size_t)(hi - lo) * lat_c * sizeof(float));
            for (int64_t s = 0; s < n; s++) {
                const float *gs = g_c + s * lat_c;
                for (int c = 0; c < 8; c++) {
                    const int64_t rr = lat_lin[s] + lat_corner[c];
                    if (rr < lo || rr >= hi) continue;
                    float *dst = g_lat + rr * lat_c;
                    const float wc = lat_w[8 * s + c];
                    for (int k = 0; k < lat_c; k++) dst[k] += wc * gs[k];
                }
            }
        }
    }
}
