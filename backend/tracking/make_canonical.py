"""Generate ``shared/canonical_face.npz``: the canonical face topology every part agrees on.

How the committed file was produced (run from the repository root)::

    npm pack @mediapipe/face_mesh@0.4.1657299874     # Apache-2.0, from the npm registry
    python -m backend.tracking.make_canonical mediapipe-face_mesh-0.4.1657299874.tgz

Why from that package: no mediapipe *wheel* (0.10.x up to 1.2.x) ships the canonical face
model (``face_geometry/data`` holds only ``__init__.py``), but the npm build of the same
face-mesh solution packs ``geometry_pipeline_metadata_landmarks.binarypb`` into its asset
bundle. That protobuf holds mediapipe's canonical mesh (468 vertices in centimetres, UVs,
triangles) and the weighted landmark basis mediapipe itself uses for its rigid fit. We parse
it with the protobuf classes that ship in the pinned mediapipe wheel, so generation needs
nothing else. The tracker (mediapipe 0.10.21 face mesh) and this mesh share one topology.

Only this script touches npm; the product loads the generated ``.npz`` (numpy only).

What is written (all float32 unless noted), see ``shared/landmarks.py`` for the frame:
  vertices    [478, 3] metres. 0..467 from the canonical mesh; 468..477 the irises, which
              the canonical mesh lacks: centre at the mean of the eye contour, four ring
              points at the mean human iris radius (5.85 mm) right/up/left/down, in the
              order the tracker's refined landmarks use.
  triangles   int32 [898, 3], counter-clockwise seen from outside (normals point out).
  uv          [468, 2] mediapipe's texture coordinates (v down, as stored).
  basis_ids / basis_weights   mediapipe's procrustes landmark basis (ids int32).
  group_*     int32 landmark index groups (ordered loops where the group is a loop).
"""

from __future__ import annotations

import argparse
import json
import re
import tarfile
from pathlib import Path

import numpy as np

ASSET_NAME = "geometry_pipeline_metadata_landmarks.binarypb"
OUT_PATH = Path(__file__).resolve().parents[2] / "shared" / "canonical_face.npz"
IRIS_RADIUS_M = 0.00585  # half the mean adult horizontal visible iris diameter (11.7 mm)
CM_TO_M = 0.01


def _read_member(tar: tarfile.TarFile, suffix: str) -> bytes:
    for member in tar.getmembers():
        if member.name.endswith(suffix):
            data = tar.extractfile(member)
            if data is not None:
                return data.read()
    raise SystemExit(f"{suffix} not found in the npm tarball")


def load_metadata_bytes(tarball: Path) -> bytes:
    """Cut the geometry metadata out of the face-mesh npm package's packed asset blob."""
    with tarfile.open(tarball) as tar:
        loader = _read_member(tar, "face_mesh_solution_packed_assets_loader.js").decode()
        blob = _read_member(tar, "face_mesh_solution_packed_assets.data")
    match = re.search(r'"filename":\s*"[^"]*' + re.escape(ASSET_NAME)
                      + r'",\s*"start":\s*(\d+),\s*"end":\s*(\d+)', loader)
    if not match:
        raise SystemExit(f"{ASSET_NAME} is not listed in the asset loader")
    return blob[int(match.group(1)):int(match.group(2))]


def _ordered_loop(edges: frozenset, points: np.ndarray) -> list[int]:
    """Walk a closed edge loop, starting at its subject-right-most point, going over the top
    first (towards +Y) so every loop has the same, documented orientation."""
    adj: dict[int, list[int]] = {}
    for a, b in edges:
        adj.setdefault(a, []).append(b)
        adj.setdefault(b, []).append(a)
    if any(len(n) != 2 for n in adj.values()):
        raise SystemExit("edge set is not a simple loop")
    start = min(adj, key=lambda i: points[i, 0])
    nxt = max(adj[start], key=lambda i: points[i, 1])
    loop = [start, nxt]
    while True:
        a, b = adj[loop[-1]]
        step = a if a != loop[-2] else b
        if step == start:
            break
        loop.append(step)
    if len(loop) != len(adj):
        raise SystemExit("edge set has more than one loop")
    return loop


def _components(edges: frozenset) -> list[frozenset]:
    """Split an edge set into its connected components (lips = outer + inner loop)."""
    remaining = set(edges)
    out = []
    while remaining:
        comp = {remaining.pop()}
        nodes = set(next(iter(comp)))
        grown = True
        while grown:
            grown = False
            for e in list(remaining):
                if nodes & set(e):
                    comp.add(e)
                    nodes |= set(e)
                    remaining.discard(e)
                    grown = True
        out.append(frozenset(comp))
    return out


def _loop_area(loop: list[int], pts: np.ndarray) -> float:
    x, y = pts[loop, 0], pts[loop, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _sorted_by_x(edges: frozenset, pts: np.ndarray) -> list[int]:
    ids = sorted({i for e in edges for i in e})
    return sorted(ids, key=lambda i: float(pts[i, 0]))


def build(tarball: Path) -> dict[str, np.ndarray]:
    from mediapipe.modules.face_geometry.protos import geometry_pipeline_metadata_pb2 as gpm
    from mediapipe.python.solutions import face_mesh_connections as fmc

    meta = gpm.GeometryPipelineMetadata()
    meta.ParseFromString(load_metadata_bytes(tarball))
    mesh = meta.canonical_mesh
    vbuf = np.asarray(mesh.vertex_buffer, dtype=np.float64).reshape(-1, 5)  # xyz uv
    if vbuf.shape[0] != 468:
        raise SystemExit(f"expected 468 canonical vertices, got {vbuf.shape[0]}")
    verts = vbuf[:, :3] * CM_TO_M
    tris = np.asarray(mesh.index_buffer, dtype=np.int32).reshape(-1, 3)

    # Make triangles face outward: the nose tip (1) lies on the front, whose normal is +Z.
    a, b, c = verts[tris[:, 0]], verts[tris[:, 1]], verts[tris[:, 2]]
    normals = np.cross(b - a, c - a)
    front = np.any(tris == 1, axis=1)
    if normals[front, 2].mean() < 0:
        tris = tris[:, ::-1].copy()

    groups: dict[str, list[int]] = {}
    lips = sorted(_components(fmc.FACEMESH_LIPS), key=lambda e: -len(e))
    loops = [_ordered_loop(e, verts) for e in lips]
    loops.sort(key=lambda lp: -_loop_area(lp, verts))
    groups["lips_outer"], groups["lips_inner"] = loops
    # mediapipe's LEFT/RIGHT are the subject's left/right, as in our frame (+X = left).
    groups["left_eye"] = _ordered_loop(fmc.FACEMESH_LEFT_EYE, verts)
    groups["right_eye"] = _ordered_loop(fmc.FACEMESH_RIGHT_EYE, verts)
    groups["left_brow"] = _sorted_by_x(fmc.FACEMESH_LEFT_EYEBROW, verts)
    groups["right_brow"] = _sorted_by_x(fmc.FACEMESH_RIGHT_EYEBROW, verts)
    groups["face_oval"] = _ordered_loop(fmc.FACEMESH_FACE_OVAL, verts)
    groups["nose"] = sorted({i for e in fmc.FACEMESH_NOSE for i in e})
    groups["right_iris"] = [468, 469, 470, 471, 472]  # centre, then ring
    groups["left_iris"] = [473, 474, 475, 476, 477]

    # Irises: ring order right(+X), up(+Y), left(-X), down(-Y) — measured on tracker
    # output (469 lies at +x of 468 in the image, 470 above it, ...).
    ring = IRIS_RADIUS_M * np.array([[1, 0, 0], [0, 1, 0], [-1, 0, 0], [0, -1, 0]], float)
    iris = []
    for eye in ("right_eye", "left_eye"):
        centre = verts[groups[eye]].mean(axis=0)
        iris.append(centre)
        iris.extend(centre + ring)
    vertices = np.concatenate([verts, np.asarray(iris)], axis=0)

    out: dict[str, np.ndarray] = {
        "vertices": vertices.astype(np.float32),
        "triangles": tris.astype(np.int32),
        "uv": vbuf[:, 3:5].astype(np.float32),
        "basis_ids": np.array([p.landmark_id for p in meta.procrustes_landmark_basis],
                              dtype=np.int32),
        "basis_weights": np.array([p.weight for p in meta.procrustes_landmark_basis],
                                  dtype=np.float32),
        "source": np.array(json.dumps({
            "package": "npm @mediapipe/face_mesh@0.4.1657299874 (Apache-2.0)",
            "asset": ASSET_NAME, "units": "metres",
            "parsed_with": "mediapipe==0.10.21 face_geometry protos",
        })),
    }
    for name, ids in groups.items():
        out[f"group_{name}"] = np.asarray(ids, dtype=np.int32)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tarball", type=Path, help="output of `npm pack @mediapipe/face_mesh`")
    parser.add_argument("--out", type=Path, default=OUT_PATH)
    args = parser.parse_args(argv)
    data = build(args.tarball)
    np.savez_compressed(args.out, **data)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, "
          f"{len(data['vertices'])} points, {len(data['triangles'])} triangles)")


if __name__ == "__main__":
    main()
