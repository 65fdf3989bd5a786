"""Attention over a union of key sets, from attention over each set and its log-sum-exp.

Softmax attention over keys K = K_a ∪ K_b is a convex mix of attention over K_a and over K_b, weighted by each
part's share of the softmax normaliser: with lse_x = log Σ_{k in K_x} exp(q·k / sqrt(D)),

    lse = log(exp(lse_a) + exp(lse_b)),   out = exp(lse_a - lse) * out_a + exp(lse_b - lse) * out_b.

Context parallel uses this to let sharded video queries attend to [all video K/V ; replicated reference K/V]: the
video part comes from diffusers' ring/Ulysses attention (with its LSE), the reference part is local.
"""

from __future__ import annotations

import torch

# Scores held at once by `attention_with_lse` (fp32 elements, 128 MiB); longer queries are processed in chunks.
MAX_SCORES = 2**25


def attention_with_lse(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, max_scores: int = MAX_SCORES
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask-free softmax attention (scale 1/sqrt(D)) in fp32, and its log-sum-exp.

    query (B, Sq, H, D), key/value (B, Sk, H, D) -> out (B, Sq, H, D) and lse (B, Sq, H), both float32. Queries
    are processed in chunks so that at most `max_scores` scores exist at a time.
    """
    batch, _, heads, dim = query.shape
    k = key.float().transpose(1, 2)  # (B, H, Sk, D)
    v = value.float().transpose(1, 2)
    chunk = max(1, max_scores // max(1, batch * heads * key.shape[1]))
    outs, lses = [], []
    for q in query.split(chunk, dim=1):
        scores = q.float().transpose(1, 2) @ k.transpose(-1, -2) * dim**-0.5  # (B, H, sq, Sk)
        lse = scores.logsumexp(dim=-1)  # (B, H, sq)
        out = torch.exp(scores - lse.unsqueeze(-1)) @ v  # (B, H, sq, D)
        outs.append(out.transpose(1, 2))  # (B, sq, H, D)
        lses.append(lse.transpose(1, 2))  # (B, sq, H)
    return torch.cat(outs, dim=1), torch.cat(lses, dim=1)


def merge_attention(
    out_a: torch.Tensor, lse_a: torch.Tensor, out_b: torch.Tensor, lse_b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention over the union of two disjoint key sets, from each part's output and log-sum-exp.

    out_* (B, S, H, D), lse_* (B, S, H) (natural log, same query scale) -> out (B, S, H, D) float32 and lse
    (B, S, H) float32. Every weight is exp of a non-positive number, so a very peaked part cannot overflow.
    """
    lse_a, lse_b = lse_a.float(), lse_b.float()
    lse = torch.logaddexp(lse_a, lse_b)  # (B, S, H)
    weight_a = torch.exp(lse_a - lse).unsqueeze(-1)  # (B, S, H, 1), in [0, 1]
    weight_b = torch.exp(lse_b - lse).unsqueeze(-1)
    return out_a.float() * weight_a + out_b.float() * weight_b, lse
