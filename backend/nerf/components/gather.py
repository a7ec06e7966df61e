"""Weighted row gathers (bilinear/trilinear lookups) with a gradient that needs no sort.

``embedding_bag`` is the fastest forward for "sum of K weighted rows of a table" on CPU
(each row one contiguous read), but its backward sorts the indices (CPU and CUDA) and
builds a zero table per call: in a training step that sort was the largest single cost.
``weighted_gather`` keeps ``embedding_bag``'s forward and computes the gradients
directly: the table's as one ``index_add_`` (a scatter-add: atomics on CUDA; on CPU
with int64 indices, as int32 ones take a slower path), the weights' as a batched
dot product of each gathered row with the output gradient. On CPU, when the CPU kernels
build (``native``), both are one loop in C that makes no [N, K, C] temporaries.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from . import native

_SORT_FREE = [True]


@contextlib.contextmanager
def sort_free(enabled: bool) -> Iterator[None]:
    """Inside the block, training lookups use the sort-free backward (``True``, the
    default) or ``embedding_bag``'s own (``False``: for the benchmark's before/after)."""
    before = _SORT_FREE[0]
    _SORT_FREE[0] = enabled
    try:
        yield
    finally:
        _SORT_FREE[0] = before


class _WeightedGather(torch.autograd.Function):
    @staticmethod
    def forward(ctx, table: torch.Tensor, idx: torch.Tensor, w: torch.Tensor
                ) -> torch.Tensor:
        ctx.save_for_backward(table, idx, w)
        return F.embedding_bag(idx, table, per_sample_weights=w, mode="sum")

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        table, idx, w = ctx.saved_tensors
        lib = native.library() if _native_ok(table, w, grad) else None
        if lib is not None:
            return _native_backward(lib, ctx, table, idx, w, grad)
        # int64: CPU index_add_ with int32 indices takes a ~4x slower path.
        flat = idx.reshape(-1).long()
        g_table = g_w = None
        if ctx.needs_input_grad[0]:
            contrib = (w[..., None] * grad[:, None]).reshape(-1, grad.shape[1])
            g_table = torch.zeros_like(table).index_add_(0, flat, contrib.to(table.dtype))
        if ctx.needs_input_grad[2]:
            rows = table.index_select(0, flat).view(*idx.shape, -1)  # [N, K, C]
            g_w = torch.bmm(rows, grad[..., None].to(rows.dtype))[..., 0].to(w.dtype)
        return g_table, None, g_w


def _native_ok(table: torch.Tensor, w: torch.Tensor, grad: torch.Tensor) -> bool:
    return (table.device.type == "cpu" and table.dtype == w.dtype == grad.dtype
            == torch.float32 and table.shape[0] < 2**31)


def _native_backward(lib, ctx, table: torch.Tensor, idx: torch.Tensor, w: torch.Tensor,
                     grad: torch.Tensor) -> tuple:
    """The same two gradients in one CPU kernel (``fc_gather_backward``): no [N, K, C]
    temporaries, and the table's scatter-add sums each row in a fixed order."""
    idx32 = idx.to(torch.int32).contiguous()
    table, w, grad = table.contiguous(), w.contiguous(), grad.contiguous()
    g_table = torch.empty_like(table) if ctx.needs_input_grad[0] else None
    g_w = torch.empty_like(w) if ctx.needs_input_grad[2] else None
    p = native.ptr
    lib.fc_gather_backward(idx32.shape[0], idx32.shape[1], table.shape[0], table.shape[1],
                           p(table), p(idx32), p(w), p(grad), p(g_table), p(g_w),
                           torch.get_num_threads())
    return g_table, None, g_w


def weighted_gather(table: torch.Tensor, idx: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """sum_k w[n, k] * table[idx[n, k]] -> [N, C] (table [T, C], idx / w [N, K])."""
    if _SORT_FREE[0] and torch.is_grad_enabled() and (table.requires_grad
                                                      or w.requires_grad):
        return _WeightedGather.apply(table, idx, w)
    return F.embedding_bag(idx, table, per_sample_weights=w, mode="sum")
