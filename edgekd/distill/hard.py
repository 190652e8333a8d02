"""HARD (Nix, Burg and Sinz, "HARD: Hard Augmentations for Robust Distillation", arXiv
2305.14890, 2023): `--kd-augment hard`. No official code was found (see the issue's table);
what follows is the paper's idea as its abstract states it, with every detail it leaves open
chosen here and labelled **edgekd's choice**.

The paper's idea: a learned augmentation model, trained during distillation, generates inputs
on which the teacher and the student *disagree*, while the inputs stay ones the teacher is
right about, and the student distils on them. The paper's augmentation models range from
spatial transformations to changes made through a pretrained VAE; edgekd builds the spatial
one (HARD-Affine), which needs nothing pretrained and nothing downloaded.

The augmentor (`AffineAugmentor`, edgekd's choice of network): a 3x3 stride-2 convolution
(16 channels) and global pooling of the image, joined with 16 N(0, 1) noise values per
sample, then Linear 32 -> 64, ReLU, Linear 64 -> 6. Its six outputs move a 2x3 affine matrix
away from the identity, bounded by tanh: theta = I + tanh(out) * [[a, a, t], [a, a, t]] with
a = `max_linear` (0.25: scale, shear and rotation) and t = `max_shift` (0.25 of the half-width).
The last layer starts at zero, so training starts from unaugmented images. The image is
resampled bilinearly with border padding (edge pixels repeat: no black frame that the data
never has).

Each training step (edgekd's choices):
1. a random `fraction` (0.5) of the batch is augmented (x' = A(x, z)), the rest stays;
2. the augmentor takes one Adam step (lr `lr`, 1e-3) on
       L_A = -T^2 KL(p_t(x') || p_s(x')) + lam * T^2 KL(p_t(x) || p_t(x'))
   with p = softmax(logits / T), T = `temperature` (4): the first term makes teacher and
   student disagree, the second keeps the teacher's own prediction where it was (the
   teacher's consistency); `lam` = 1. Teacher and student weights are not touched by it
   (their gradients flow to the augmentor only) and the student's BatchNorm statistics are
   restored after its forward;
3. an augmented sample is kept only where the teacher still predicts the label (label-free
   data: its own top-1 on the original image); elsewhere the original image is used. So every
   image the student sees is one the teacher is right about;
4. the student distils on the batch as usual, the teacher run live on it (a cache of the
   original images' outputs cannot serve augmented ones).

The noise and the augmented subset of each step come from the step's generator
(`augment.step_generator`), and the augmentor and its optimizer are in `last.pt`, so a
resumed run augments as an uninterrupted one. Under DDP the augmentor's gradients are
averaged over the ranks, so every rank holds the same augmentor.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.outputs import first_output

NOISE = 16


class AffineAugmentor(nn.Module):
    """x [B, C, H, W], noise z [B, NOISE] -> affine-warped x (the identity at init)."""

    def __init__(self, channels: int, max_linear: float = 0.25, max_shift: float = 0.25):
        super().__init__()
        self.encode = nn.Sequential(nn.Conv2d(channels, 16, 3, stride=2, padding=1), nn.ReLU(),
                                    nn.AdaptiveAvgPool2d(1), nn.Flatten())  # fmt: skip
        self.head = nn.Sequential(nn.Linear(16 + NOISE, 64), nn.ReLU(), nn.Linear(64, 6))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)
        limit = torch.tensor([[max_linear, max_linear, max_shift]] * 2)
        self.register_buffer("limit", limit, persistent=False)
        self.register_buffer("eye", torch.eye(2, 3), persistent=False)

    def theta(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        out = self.head(torch.cat([self.encode(x), z], dim=1)).view(-1, 2, 3)
        return self.eye + torch.tanh(out) * self.limit

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        grid = F.affine_grid(self.theta(x, z), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border",
                             align_corners=False)  # fmt: skip


@contextmanager
def bn_statistics_kept(model: nn.Module):
    """The running statistics of `model`'s normalisation layers as they were, after."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._NormBase)
           and m.track_running_stats]  # fmt: skip
    kept = [{k: v.clone() for k, v in m.named_buffers(recurse=False)} for m in bns]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, state in zip(bns, kept, strict=True):
                for k, v in m.named_buffers(recurse=False):
                    if k in state:
                        v.copy_(state[k])


def _kl(p_logits: torch.Tensor, q_logits: torch.Tensor, t: float) -> torch.Tensor:
    """T^2 KL(softmax(p/T) || softmax(q/T)), mean over the batch."""
    return F.kl_div(F.log_softmax(q_logits / t, 1), F.log_softmax(p_logits / t, 1),
                    reduction="batchmean", log_target=True) * t * t  # fmt: skip


@dataclass
class HardStep:
    """What one step did: images augmented, of them kept, and the augmentor's two terms."""

    augmented: int
    kept: int
    disagreement: float
    consistency: float


class HardAugment:
    """The augmentor, its optimizer and the per-step procedure above."""

    def __init__(self, channels: int, device, *, fraction: float = 0.5, lam: float = 1.0,
                 temperature: float = 4.0, lr: float = 1e-3, max_linear: float = 0.25,
                 max_shift: float = 0.25) -> None:  # fmt: skip
        if not 0 < fraction <= 1:
            raise ValueError(f"the hard fraction must lie in (0, 1], got {fraction}")
        self.fraction, self.lam, self.temperature = fraction, lam, temperature
        self.net = AffineAugmentor(channels, max_linear, max_shift).to(device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=lr)

    def state_dict(self) -> dict:
        return {"net": self.net.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["opt"])

    def __call__(self, x, target, teacher: nn.Module, student: nn.Module, g: torch.Generator,
                 world_size: int = 1) -> tuple[torch.Tensor, HardStep]:  # fmt: skip
        """(the batch the student distils on, what was done). `teacher` and `student` are the
        plain modules (no DDP wrapper); `target` the labels or None.

        The trainer then runs the teacher on the returned batch again, so each kept x' passes
        through the teacher twice: once here with the augmentor's gradient, once there under
        no_grad with the hooks that collect the features a loss taps (fitnet, ofa, qfd). One
        pass could serve both only for a logits-only loss; the cost is at most `fraction` of a
        teacher forward per step."""
        b = x.shape[0]
        n = max(1, round(self.fraction * b))
        pick = torch.randperm(b, generator=g)[:n].to(x.device)
        z = torch.randn(n, NOISE, generator=g).to(x.device, x.dtype)
        xs = x[pick]
        with torch.no_grad():
            t_clean = first_output(teacher(xs)).float()
        self.net.train()
        x_aug = self.net(xs, z)
        t_aug = first_output(teacher(x_aug)).float()
        t = self.temperature
        params = list(self.net.parameters())
        with bn_statistics_kept(student):
            s_aug = first_output(student(x_aug)).float()
            disagreement = _kl(t_aug, s_aug, t)
            consistency = _kl(t_clean, t_aug, t)
            loss = -disagreement + self.lam * consistency
            grads = torch.autograd.grad(loss, params)
        if world_size > 1:
            for gr in grads:
                torch.distributed.all_reduce(gr)
                gr /= world_size
        for p, gr in zip(params, grads, strict=True):
            p.grad = gr
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        want = target[pick] if target is not None else t_clean.argmax(1)
        ok = t_aug.detach().argmax(1) == want
        out = x.clone()
        out[pick[ok]] = x_aug.detach()[ok].to(out.dtype)
        return out, HardStep(n, int(ok.sum()), disagreement.item(), consistency.item())

