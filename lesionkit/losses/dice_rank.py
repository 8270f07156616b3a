"""SE-LCN's segmentation loss: soft Dice over both classes + λ · a hard-pixel rank loss."""
from __future__ import annotations

import torch

from lesionkit.losses._base import FastaiLoss, plain


def soft_dice(p: torch.Tensor, g: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Per-image D = 2Σpg / (Σp + Σg + eps); p, g of shape (B, H, W)."""
    dims = tuple(range(1, p.dim()))
    return 2 * (p * g).sum(dims) / (p.sum(dims) + g.sum(dims) + eps)


def rank_loss(p_fg: torch.Tensor, g: torch.Tensor, k: int = 30, margin: float = 0.3) -> torch.Tensor:
    """Mean over images of (1/K²) Σ_ij max(0, n_i − q_j + margin), n = the K highest foreground probabilities among
    background pixels, q = the K lowest among foreground pixels. Images with fewer than K pixels of a kind use all of
    them; images without one of the two kinds are skipped (0 if none is left)."""
    losses = []
    for prob, truth in zip(p_fg.flatten(1), g.flatten(1) > 0.5):
        neg, pos = prob[~truth], prob[truth]
        if neg.numel() == 0 or pos.numel() == 0:
            continue
        n = neg.topk(min(k, neg.numel())).values
        q = pos.topk(min(k, pos.numel()), largest=False).values
        losses.append((n[:, None] - q[None, :] + margin).clamp_min(0).mean())
    return torch.stack(losses).mean() if losses else p_fg.sum() * 0


class DiceRankLoss(FastaiLoss):
    """L = ½[mean_b(1 − D(P_bg, 1 − g)) + mean_b(1 − D(P_fg, g))] + λ · rank_loss(P_fg, g).

    Input: logits (B, 2, H, W) (softmax over the 2 channels) and a mask (B, H, W) or (B, 1, H, W); nonzero = lesion.
    Defaults as in SE-LCN's train_seg.py: K = 30, margin 0.3, λ = 0.05.
    """

    class_dim = 1

    def __init__(self, k: int = 30, margin: float = 0.3, lam: float = 0.05) -> None:
        super().__init__()
        self.k, self.margin, self.lam = k, margin, lam

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pred = plain(pred)
        if pred.dim() != 4 or pred.shape[1] != 2:
            raise ValueError(f"DiceRankLoss expects (B, 2, H, W) logits, got {tuple(pred.shape)}")
        g = plain(target)
        g = ((g.squeeze(1) if g.dim() == 4 else g) > 0).to(pred.dtype)  # {0, 1} or {0, 255} masks
        prob = pred.softmax(dim=1)
        dice = 0.5 * ((1 - soft_dice(prob[:, 0], 1 - g)).mean() + (1 - soft_dice(prob[:, 1], g)).mean())
        return dice + self.lam * rank_loss(prob[:, 1], g, self.k, self.margin)
