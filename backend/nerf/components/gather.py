"""Weighted row gathers (bilinear/trilinear lookups) with a gradient that needs no sort.

``embedding_bag`` is the fastest forward for "sum of K weighted rows of a table" on CPU
(each row one contiguous read), but its backward sorts the indices (CPU and CUDA) and
builds a zero table per call: in a training step that sort was the largest single cost.
``weighted_gather`` keeps ``embedding_bag``'s forward and computes the gradients
directly: the table's as one ``index_add_`` (a scatter-add: atomics on CUDA; on CPU
with int64 indices, as int32 ones take a slower path), the weights' as a batched
dot product of each gathered row with the output gradient.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F

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


def weighted_gather(table: torch.Tensor, idx: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """sum_k w[n, k] * table[idx[n, k]] -> [N, C] (table [T, C], idx / w [N, K])."""
    if _SORT_FREE[0] and torch.is_grad_enabled() and (table.requires_grad
                                                      or w.requires_grad):
        return _WeightedGather.apply(table, idx, w)
    return F.embedding_bag(idx, table, per_sample_weights=w, mode="sum")
