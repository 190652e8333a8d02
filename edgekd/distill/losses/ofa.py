"""OFA-KD, Hao et al., "One-for-All: Bridge the Gap Between Heterogeneous Architectures in
Knowledge Distillation" (NeurIPS 2023). Official code: Hao840/OFAKD at f7bb896,
`distillers/ofa.py` (the loss L13-18, the projectors L38-95, the terms L97-127) and
`distillers/utils.py` (PatchMerging L7-41, SepConv L131-146, init_weights L148-158).

The loss with adaptive target enhancement, for one set of student logits s against the
teacher's t, with m the one-hot mask of the true class (the teacher's top-1 without labels):

    ofa(s, t) = mean_b sum_j -((p_t + m)^eps - m)_j * log p_s,j,
    p = softmax(logits / temperature), no temperature^2 factor.

With eps = 1 it is the cross-entropy to the teacher's distribution; eps > 1 raises the target
class's weight ((p_t,y + 1)^eps - 1 > p_t,y) and lowers the others' (p^eps < p).

Only the *student* is tapped: every student stage k gets a projector head into the logit space
and its logits are held to the teacher's final logits, so the teacher's architecture does not
matter (a ViT teacher into a CNN student is the case the method was built for), and the
teacher's logits can come from the cache or from an ONNX file.
- CNN stage maps [C, H, W]: (4 - k) SepConv blocks (depthwise 3x3 stride 2, 1x1, BN, ReLU,
  depthwise 3x3, 1x1, BN, ReLU), doubling the channels, the last to max(D_s, D_t); stage 4 a
  1x1 conv to that width; then global average pooling and a Linear to the classes.
- ViT token stages [N, C]: patch merging down to a 7x7 grid (none when the grid is already
  that small), max(4 - k, 1) transformer blocks (4 heads), the class token (or the mean of the
  tokens without one), a Linear; the merges and blocks are D_s wide.
D_s, D_t are the classifiers' input widths (D_t falls back to D_s when the teacher's layers
cannot be read, e.g. an ONNX teacher: edgekd's choice, the official code always has both).

    loss = ce * CE(s, y) + kd * ofa(s, t) + ofa * sum_k ofa(head_k(stage_k), t)

edgekd's choices where the official code is model-specific: stage k (1..4) is the last feature
of reduction 2^(k+1) in timm's `feature_info` (layer1..layer4 on a ResNet, as the official
stage_info); a model whose features all share one reduction (a ViT) uses blocks 1, 3, 9, 11 of
12 as the official code does, scaled to its depth. One `eps` serves every stage and the logits
(the official default, `--ofa-eps 1`); 1.5 is the paper's ImageNet setting.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.distill.losses._registry import register_loss
from edgekd.distill.losses.base import DistillLoss, KDBatch


def ofa_loss(
    logits_student: torch.Tensor,
    logits_teacher: torch.Tensor,
    labels: torch.Tensor,
    eps: float = 1.0,
    temperature: float = 1.0,
) -> torch.Tensor:
    """The OFA term (see the module docstring), batch mean."""
    mask = F.one_hot(labels, logits_student.shape[1]).to(logits_student.dtype)
    p_t = F.softmax(logits_teacher / temperature, dim=1)
    log_p_s = F.log_softmax(logits_student / temperature, dim=1)
    weight = (p_t + mask).pow(eps) - mask
    return -(weight * log_p_s).sum(dim=1).mean()


def _sep_conv(c_in: int, c_out: int) -> nn.Sequential:
    """Depthwise-separable block that halves the spatial size (the official SepConv)."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_in, 3, stride=2, padding=1, groups=c_in, bias=False),
        nn.Conv2d(c_in, c_in, 1, bias=False),
        nn.BatchNorm2d(c_in),
        nn.ReLU(),
        nn.Conv2d(c_in, c_in, 3, stride=1, padding=1, groups=c_in, bias=False),
        nn.Conv2d(c_in, c_out, 1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    )


def cnn_head(stage: int, channels: int, width: int, classes: int) -> nn.Sequential:
    """Stage `stage` map with `channels` channels -> logits (the official CNN projector)."""
    if stage >= 4:
        body: list[nn.Module] = [nn.Conv2d(channels, width, 1)]
    else:
        body, c = [], channels
        blocks = 4 - stage
        for i in range(blocks):
            body.append(_sep_conv(c, width if i == blocks - 1 else c * 2))
            c *= 2
    return nn.Sequential(*body, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, classes))


class PatchMerge(nn.Module):
    """[B, h*w, C] patch tokens -> [B, h/2*w/2, out]: each 2x2 neighbourhood concatenated
    (4C), LayerNorm, a bias-free Linear, an activation (Swin's patch merging)."""

    def __init__(self, grid: int, dim: int, out: int, act: bool) -> None:
        super().__init__()
        self.grid = grid
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, out, bias=False)
        self.act = nn.GELU() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        g = self.grid
        x = x.reshape(b, g, g, c)
        quads = [x[:, i::2, j::2, :] for j in (0, 1) for i in (0, 1)]
        x = torch.cat(quads, dim=-1).reshape(b, -1, 4 * c)
        return self.act(self.reduction(self.norm(x)))


class ViTHead(nn.Module):
    """Token stage [B, prefix + g*g, C] -> logits (the official ViT projector)."""

    def __init__(self, stage: int, tokens: int, dim: int, width: int, classes: int,
                 prefix: int) -> None:  # fmt: skip
        from timm.models.vision_transformer import Block

        super().__init__()
        self.prefix = prefix
        grid = int((tokens - prefix) ** 0.5)
        merges, g = [], grid
        while g // 2 >= 7 and g % 2 == 0:  # the official merge count, max(log2(grid / 7), 0)
            merges.append(g)
            g //= 2
        self.merge = nn.Sequential(*(
            PatchMerge(gi, dim if i == 0 else width, width, act=i == 0 or i < len(merges) - 1)
            for i, gi in enumerate(merges)
        ))  # fmt: skip
        d = width if merges else dim
        # the official code concatenates the class token unchanged, which needs dim == D_s (a
        # ViT student's own width); edgekd projects it when they differ (its choice)
        self.prefix_proj = nn.Linear(dim, d) if d != dim and prefix else nn.Identity()
        self.blocks = nn.Sequential(*(Block(dim=d, num_heads=4) for _ in range(max(4 - stage, 1))))
        self.fc = nn.Linear(d, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cls, patches = x[:, : self.prefix], x[:, self.prefix :]
        x = torch.cat([self.prefix_proj(cls), self.merge(patches)], dim=1)
        x = self.blocks(x)
        pooled = x[:, : self.prefix].flatten(1) if self.prefix else x.mean(dim=1)
        return self.fc(pooled)


def _init(module: nn.Module) -> None:
    """The official init_weights: He-normal convs (fan out), unit BatchNorm, Linear N(0, 0.02)
    truncated at +-2 std."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02, a=-0.04, b=0.04)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def parse_stages(text: str) -> tuple[int, ...]:
    """"1+2+3+4" (or "1 2 3 4") -> (1, 2, 3, 4); each in 1..4."""
    try:
        stages = tuple(sorted({int(p) for p in text.replace("+", " ").split()}))
    except ValueError:
        raise ValueError(f"stages must be numbers 1-4 joined by '+', got {text!r}") from None
    if not stages or not all(1 <= s <= 4 for s in stages):
        raise ValueError(f"stages must be numbers 1-4 joined by '+', got {text!r}")
    return stages


@register_loss("ofa")
class OFALoss(DistillLoss):
    """OFA-KD (Hao et al. 2023): per-stage heads into the logit space, adaptive target (eps)."""

    needs = frozenset({"stages"})
    zero_at_match = False  # the stage heads are learned

    def __init__(
        self,
        ce: float = 1.0,
        kd: float = 1.0,
        ofa: float = 1.0,
        eps: float = 1.0,
        temperature: float = 1.0,
        stages: str = "1+2+3+4",
    ) -> None:
        super().__init__(ce)
        if eps <= 0 or temperature <= 0:
            raise ValueError(f"eps and temperature must be > 0, got {eps}, {temperature}")
        self.kd, self.ofa, self.eps, self.temperature = kd, ofa, eps, temperature
        self.stages = parse_stages(stages)
        self.heads = nn.ModuleList()

    def setup(self, shapes: dict) -> None:
        """shapes: `stages_s` (the raw shape of student stages 1..4, without the batch),
        `dim_s` / `dim_t` (the classifiers' input widths; dim_t may be absent), `classes`,
        `prefix_s` (a ViT student's class/distillation token count)."""
        have = shapes["stages_s"]
        missing = [k for k in self.stages if k > len(have)]
        if missing:
            raise ValueError(f"the student has {len(have)} stage(s), stages asks for {missing}")
        width = max(shapes["dim_s"][0], shapes.get("dim_t", shapes["dim_s"])[0])
        classes = shapes["classes"][0]
        self.heads = nn.ModuleList()
        for k in self.stages:
            shape = have[k - 1]
            if len(shape) == 3:
                self.heads.append(cnn_head(k, shape[0], width, classes))
            else:
                tokens, dim = shape
                prefix = shapes.get("prefix_s", (0,))[0]  # the official ViT head is D_s wide
                self.heads.append(ViTHead(k, tokens, dim, shapes["dim_s"][0], classes, prefix))
        _init(self.heads)

    def distill_terms(self, batch: KDBatch) -> dict[str, torch.Tensor]:
        if len(self.heads) != len(self.stages):
            raise RuntimeError("ofa loss: setup() was not called before training")
        if batch.stages_s is None:
            raise RuntimeError("ofa loss: the batch holds no student stages")
        y = batch.labels()
        t, e, tau = batch.logits_t, self.eps, self.temperature
        staged = sum(
            ofa_loss(head(batch.stages_s[k - 1]), t, y, e, tau)
            for k, head in zip(self.stages, self.heads, strict=True)
        )
        return {
            "loss_kd": self.kd * ofa_loss(batch.logits_s, t, y, e, tau),
            "loss_ofa": self.ofa * staged,
        }
