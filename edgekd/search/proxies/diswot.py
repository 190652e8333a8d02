"""DisWOT, Dong et al., "DisWOT: Student Architecture Search for Distillation WithOut
Training" (CVPR 2023): how well a randomly initialised student's features already relate
the samples of a real batch the way the teacher's do.

- relation distance: G = f f^T over the flattened last-stage features f [B, D] (any widths:
  G is B x B), rows L2-normalised; d_rel = ||G_t - G_s||_F^2 / B^2;
- semantic distance: the same on Grad-CAM maps of the true class at the last stage (channel
  weights = spatially averaged gradients of the class logit, map = ReLU(sum_c w_c A_c)),
  teacher maps resized to the student's; d_sem = ||S_t - S_s||_F^2 / B^2.
score = -(d_sem + d_rel): higher is better.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.distill.losses._spatial import resize_to


def relation_distance(f_t: torch.Tensor, f_s: torch.Tensor) -> float:
    """||normalize_rows(f_t f_t^T) - normalize_rows(f_s f_s^T)||_F^2 / B^2."""
    b = f_t.shape[0]
    g_t = F.normalize(f_t.flatten(1) @ f_t.flatten(1).T, dim=1)
    g_s = F.normalize(f_s.flatten(1) @ f_s.flatten(1).T, dim=1)
    return float((g_t - g_s).pow(2).sum() / b**2)


def grad_cam(model: nn.Module, layer: str, x: torch.Tensor, y: torch.Tensor):
    """(last-stage map [B,C,H,W], Grad-CAM maps [B,1,H,W]) for the classes `y`."""
    from edgekd.distill.taps import Taps

    taps = Taps(model, features=True, embeddings=False, layer=layer, sample=x, role="model")
    try:
        kept: list[torch.Tensor] = []
        h = model.get_submodule(taps.layer).register_forward_hook(
            lambda _m, _i, out: kept.append(out) if isinstance(out, torch.Tensor) else None
        )
        try:
            model.eval()
            x = x.clone().requires_grad_(True)
            logits, fmap, _ = taps.run(x)
        finally:
            h.remove()
        raw = kept[-1]
        grads = torch.autograd.grad(logits.gather(1, y[:, None]).sum(), raw)[0]
        from edgekd.distill.taps import as_map

        g = as_map(grads)
        cam = F.relu((g.mean(dim=(2, 3), keepdim=True) * fmap).sum(dim=1, keepdim=True))
        return fmap.detach(), cam.detach()
    finally:
        taps.remove()


def diswot_score(
    teacher: nn.Module,
    student: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    teacher_layer: str | None = None,
    student_layer: str | None = None,
) -> dict[str, float]:
    """{"diswot": -(d_sem + d_rel), "d_sem": ..., "d_rel": ...} on the batch (x, y)."""
    f_t, cam_t = grad_cam(teacher, teacher_layer, x, y)
    f_s, cam_s = grad_cam(student, student_layer, x, y)
    d_rel = relation_distance(f_t, f_s)
    d_sem = relation_distance(resize_to(cam_t, cam_s.shape[-2:]), cam_s)
    return {"diswot": -(d_sem + d_rel), "d_sem": d_sem, "d_rel": d_rel}
