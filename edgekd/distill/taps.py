"""Feature taps: forward hooks that capture what feature losses compare.

- the *stage* map: a named module's output, or by default the last stage whose output still
  has at least 2x2 positions (timm's `feature_info` when the model has it, else the last module
  in execution order with a 4-D output); ViT token outputs [B, N, C] become maps [B, C, h, w]
  (the prefix tokens dropped, the rest laid out as a square grid);
- the *embedding*: the input of the classifier (timm's `get_classifier()`, else the last
  `nn.Linear`), flattened to [B, D];
- the *stages* 1..4 (OFA's per-stage heads): the last feature of reduction 4, 8, 16 and 32 in
  timm's `feature_info` (layer1..layer4 on a ResNet); where every feature shares one reduction
  (a ViT's blocks), blocks 1, 3, 9, 11 of 12 as OFA's official stage_info, scaled to the depth.
  Kept raw: a ViT stage is its [B, N, C] tokens. A graph without stage modules (ONNX Runtime's
  Q/DQ graph, trained in QAT) taps the last module of each reduction in a probe.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from edgekd.errors import ConfigError
from edgekd.outputs import first_output


def tokens_to_map(x: torch.Tensor) -> torch.Tensor:
    """[B, N, C] tokens -> [B, C, s, s] with s = floor(sqrt(N)); leading (class) tokens dropped."""
    b, n, c = x.shape
    s = math.isqrt(n)
    return x[:, n - s * s :, :].transpose(1, 2).reshape(b, c, s, s)


def as_map(x: torch.Tensor) -> torch.Tensor:
    if x.dim() == 4:
        return x
    if x.dim() == 3:
        return tokens_to_map(x)
    raise ValueError(f"cannot use a {x.dim()}-D output as a feature map")


def _hookable(model: nn.Module, role: str) -> None:
    from edgekd.models.onnx_teacher import opaque_kind

    kind = opaque_kind(model)
    if kind is not None:
        raise ConfigError(
            f"feature losses need a {role} whose layers can be hooked, not {kind}",
            fix="pass a checkpoint or a state dict with --arch, or use a logit loss (kd, dkd...)",
        )


def _probe_outputs(model: nn.Module, x: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """(name, output) of every named module, in execution order, for one forward pass."""
    seen: list[tuple[str, torch.Tensor]] = []
    hooks = []
    for name, module in model.named_modules():
        if name:
            hooks.append(
                module.register_forward_hook(
                    lambda _m, _i, out, name=name: (
                        seen.append((name, out)) if isinstance(out, torch.Tensor) else None
                    )
                )
            )
    was_training = model.training
    try:  # eval: a probe must not move BatchNorm running statistics
        model.eval()
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return seen


def default_feature_layer(model: nn.Module, x: torch.Tensor) -> str:
    """The last stage whose output has at least 2x2 positions (see the module docstring)."""
    outputs = dict(_probe_outputs(model, x))
    info = getattr(model, "feature_info", None)
    names = []
    if info is not None:
        try:
            names = [f["module"] for f in info]
        except (TypeError, KeyError):
            names = [getattr(info, "module_name", lambda i: None)(i) for i in range(len(info))]
        names = [n for n in names if n in outputs]
    if not names:
        names = [n for n, out in outputs.items() if out.dim() in (3, 4)]
    for name in reversed(names):
        try:
            fmap = as_map(outputs[name])
        except ValueError:
            continue
        if fmap.shape[-1] >= 2 and fmap.shape[-2] >= 2:
            return name
    if names:
        return names[-1]
    raise ConfigError(
        "found no feature map to tap in the model", fix="name a layer with --student-layer"
    )


def _probed_stages(model: nn.Module, sample: torch.Tensor) -> list[tuple[str, int]]:
    """(name, reduction) of every module with a 4-D output, from one probe: for graphs without
    stage modules (ONNX Runtime's Q/DQ graph in QAT), the last of each reduction is the stage."""
    size = sample.shape[-1]
    seen = _probe_outputs(model, sample)
    calls: dict[str, int] = {}
    for n, _ in seen:
        calls[n] = calls.get(n, 0) + 1
    # a module run more than once a pass (a shared input quantizer) has no single output
    return [(n, size // out.shape[-1]) for n, out in seen
            if calls[n] == 1 and out.dim() == 4 and size % out.shape[-1] == 0]  # fmt: skip


def stage_layers(model: nn.Module, sample: torch.Tensor | None = None) -> list[str]:
    """The names of stages 1..4 (see the module docstring); fewer when the model has fewer.
    Without timm's feature_info, the last module of each reduction in a probe with `sample`."""
    info = getattr(model, "feature_info", None)
    try:
        feats = [(f["module"], int(f["reduction"])) for f in info]  # type: ignore[union-attr]
    except (TypeError, KeyError):
        feats = []
    if not feats and sample is not None:
        feats = _probed_stages(model, sample)
    if not feats:
        raise ConfigError(
            "found no stages in this student (no timm feature_info, no 4-D outputs)",
            fix="use a timm student, or a loss that taps one layer (fitnet, fa)",
        )
    reductions = {r for _, r in feats}
    if len(reductions) == 1:  # isotropic (ViT): OFA's blocks 1, 3, 9, 11 of 12
        n = len(feats)
        if n <= 4:
            return [f for f, _ in feats]
        picks = sorted({min(n - 1, max(0, round((i + 1) * n / 12) - 1)) for i in (1, 3, 9, 11)})
        return [feats[i][0] for i in picks]
    last: dict[int, str] = {}
    for name, r in feats:
        last[r] = name
    return [last[r] for r in (4, 8, 16, 32) if r in last]


def classifier_module(model: nn.Module) -> nn.Module:
    get = getattr(model, "get_classifier", None)
    if callable(get):
        head = get()
        if isinstance(head, nn.Module) and not isinstance(head, nn.Identity):
            return head
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ConfigError("found no classifier (nn.Linear) whose input is the embedding")
    return linears[-1]


class Taps:
    """Hooks on one model; call `run(x)` to get (logits, stage map or None, embedding or None)."""

    def __init__(
        self,
        model: nn.Module,
        *,
        features: bool,
        embeddings: bool,
        layer: str | None,
        sample: torch.Tensor,
        role: str,
        stages: bool = False,
    ) -> None:
        self.model = model
        self.layer: str | None = None
        self.stage_names: list[str] = stage_layers(model, sample) if stages else []
        self._stages: dict[str, torch.Tensor] = {}
        self.raw_shape: tuple[int, ...] | None = None  # the tapped output's, before as_map
        self._feat: torch.Tensor | None = None
        self._emb: torch.Tensor | None = None
        self._hooks = []
        for name in self.stage_names:
            self._hooks.append(model.get_submodule(name).register_forward_hook(
                lambda _m, _i, out, name=name: self._stages.__setitem__(
                    name, first_output(out))))  # fmt: skip
        if not (features or embeddings):
            return
        _hookable(model, role)
        if features:
            self.layer = layer or default_feature_layer(model, sample)
            try:
                module = model.get_submodule(self.layer)
            except AttributeError:
                names = [n for n, _ in model.named_modules() if n][-8:]
                raise ConfigError(
                    f"{role} has no layer named {self.layer!r}",
                    fix=f"name one of its modules, e.g. {', '.join(names)}",
                ) from None
            self._hooks.append(module.register_forward_hook(self._keep_feat))
        if embeddings:
            self._hooks.append(classifier_module(model).register_forward_pre_hook(self._keep_emb))

    def _keep_feat(self, _m, _i, out) -> None:
        out = first_output(out)
        self.raw_shape = tuple(out.shape[1:])
        self._feat = as_map(out)

    def describe(self, feat: torch.Tensor | None, emb: torch.Tensor | None,
                 stages: list[torch.Tensor] | None = None) -> str:  # fmt: skip
        """What this side taps, from one run's outputs: "layer4 -> 512x2x2", a ViT's
        "blocks.11: tokens 65x192 -> map 192x8x8 (1 prefix token dropped)", "embedding 512"."""
        parts = []
        if feat is not None and self.layer is not None:
            shape = "x".join(map(str, feat.shape[1:]))
            raw = self.raw_shape or ()
            if len(raw) == 2:  # [N, C] tokens laid out as a square map
                dropped = raw[0] - feat.shape[2] * feat.shape[3]
                shape = f"tokens {raw[0]}x{raw[1]} -> map {shape}"
                shape += f" ({dropped} prefix token(s) dropped)" if dropped else ""
            parts.append(f"{self.layer} -> {shape}")
        if emb is not None:
            parts.append(f"embedding {emb.shape[1]} (the classifier's input)")
        if stages:
            named = enumerate(zip(self.stage_names, stages, strict=True), 1)
            shown = [f"{k} {n} -> {'x'.join(map(str, f.shape[1:]))}" for k, (n, f) in named]
            parts.append("stages " + ", ".join(shown))
        return "; ".join(parts)


    def _keep_emb(self, _m, inputs) -> None:
        self._emb = inputs[0].flatten(1)

    def run(self, x: torch.Tensor):
        self._feat = self._emb = None
        self._stages = {}
        out = self.model(x)
        logits = first_output(out)
        feat, emb = self._feat, self._emb
        self._feat = self._emb = None
        return logits, feat, emb

    def stages(self) -> list[torch.Tensor] | None:
        """The stage outputs of the last `run`, in stage order (None without stage taps)."""
        if not self.stage_names:
            return None
        return [self._stages[n] for n in self.stage_names]

    def remove(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []


def describe_module(module: nn.Module) -> str:
    """One line for a small learned module: "Conv2d 48->256 1x1 + BatchNorm2d (12,800 params)"."""

    def one(m: nn.Module) -> str:
        if isinstance(m, nn.Conv2d):
            return f"Conv2d {m.in_channels}->{m.out_channels} {m.kernel_size[0]}x{m.kernel_size[1]}"
        if isinstance(m, nn.Linear):
            return f"Linear {m.in_features}->{m.out_features}"
        return type(m).__name__

    if isinstance(module, nn.ModuleList):  # one head per stage (ofa)
        n = sum(p.numel() for p in module.parameters())
        return f"{len(module)} heads into the logits ({n:,} params)"
    seq = isinstance(module, nn.Sequential)
    parts = [one(m) for m in module.children()] if seq else [one(module)]
    n = sum(p.numel() for p in module.parameters())
    return f"{' + '.join(parts)} ({n:,} params)"
