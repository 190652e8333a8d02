"""QFD's first step (Zhu et al., arXiv 2307.10638): the teacher is fine-tuned with its feature
quantizer in place, so that the quantized representation the student will learn is one the
teacher was trained to classify from. `--qat-kd-args teacher_epochs=N` (qfd).

edgekd's form of it (no official code exists; every number here is edgekd's choice):
- the quantizer is qfd's own (`losses.qfd.quantize_feature`: `bits` bits on the range of the
  *original* teacher's embedding over the calibration images, lo = 0 when none is negative),
  inserted before the classifier with a straight-through gradient (round() passes the
  gradient unchanged inside the range);
- a copy of the teacher is fine-tuned with cross-entropy on the labelled training images for
  `teacher_epochs` epochs: AdamW at `teacher_lr` (1e-4), weight decay 0.05, batch 64, shuffled
  with the phase's seed, BatchNorm in train mode; the last epoch's weights are kept;
- the fine-tuned teacher keeps the quantizer: its logits come from its quantized feature, and
  qfd's target Q(f_t) is that feature (Q is idempotent). The range stays the one the teacher
  was fine-tuned with;
- the fine-tuned weights and the range are saved as `{prefix}qfd_teacher.pt` beside the
  phase's checkpoints, so `--resume` and the other DDP ranks load them instead of training
  again. The user's teacher file is never changed.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from edgekd._io import atomic_path
from edgekd.data import DataBundle
from edgekd.distill.losses.qfd import quantize_feature, quantizer_range
from edgekd.distill.taps import Taps, classifier_module
from edgekd.distill.teacher_stats import teacher_feature_range
from edgekd.errors import ConfigError
from edgekd.outputs import first_output
from edgekd.progress import Tally


def quantize_embedding(teacher: nn.Module, lo: float, hi: float, bits: int):
    """A forward pre-hook on `teacher`'s classifier: its input quantized, gradient straight
    through. Returns the hook handle."""

    def hook(_m, inputs):
        x = inputs[0]
        return (x + (quantize_feature(x, lo, hi, bits) - x).detach(), *inputs[1:])

    return classifier_module(teacher).register_forward_pre_hook(hook)


def embedding_range(teacher: nn.Module, ds, device) -> tuple[float, float]:
    """The quantizer's range (qfd.quantizer_range) of the teacher's embedding over `ds`."""
    taps = Taps(teacher, features=False, embeddings=True, layer=None,
                sample=ds[0][0].unsqueeze(0).to(device), role="teacher")  # fmt: skip
    try:
        lo, hi = teacher_feature_range(taps, ds, device)
    finally:
        taps.remove()
    return quantizer_range(lo, hi)


def finetuned_teacher(teacher: nn.Module, loss_fn, bundle: DataBundle, *, seed: int, device,
                      path: Path, resume: bool, main: bool, barrier, say) -> nn.Module:  # fmt: skip
    """The teacher this phase distils from: fine-tuned with qfd's quantizer (see above), or
    loaded from `path` when a resumed run (or rank 0) has written it."""
    if not bundle.labeled:
        raise ConfigError("qfd's teacher_epochs fine-tunes the teacher on the labels, and this "
                          "data has none", fix="drop teacher_epochs (the teacher stays as it is)")
    epochs, bits = int(loss_fn.teacher_epochs), loss_fn.bits
    tuned = copy.deepcopy(teacher).to(device)
    saved = torch.load(path, map_location=device, weights_only=True) if (
        resume and path.exists()) else None  # fmt: skip
    if saved is None and main:
        lo, hi = embedding_range(teacher, bundle.calib_source, device)
        handle = quantize_embedding(tuned, lo, hi, bits)
        for p in tuned.parameters():
            p.requires_grad_(True)
        opt = torch.optim.AdamW(tuned.parameters(), lr=loss_fn.teacher_lr, weight_decay=0.05)
        g = torch.Generator().manual_seed(seed)
        batches = math.ceil(len(bundle.train) / 64)
        for epoch in range(epochs):
            tuned.train()
            total, n = 0.0, 0
            tally = Tally(say, f"qfd: fine-tuning the teacher, epoch {epoch + 1}/{epochs}",
                          "batches", every=10.0)  # fmt: skip
            for i, (x, y) in enumerate(torch.utils.data.DataLoader(
                    bundle.train, batch_size=64, shuffle=True, generator=g)):  # fmt: skip
                out = tuned(x.to(device))
                out = first_output(out)
                loss = F.cross_entropy(out.float(), torch.as_tensor(y).to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total, n = total + loss.item() * len(x), n + len(x)
                tally(i + 1, batches)
            say(f"qfd: fine-tuning the teacher with its {bits}-bit feature quantizer on "
                f"[{lo:.4g}, {hi:.4g}], epoch {epoch + 1}/{epochs}: ce {total / max(1, n):.4f}")
        handle.remove()
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            torch.save({"model": tuned.state_dict(), "range": [lo, hi], "bits": bits,
                        "epochs": epochs}, tmp)  # fmt: skip
    barrier()  # the other ranks read rank 0's file
    if saved is None:
        saved = torch.load(path, map_location=device, weights_only=True)
    tuned.load_state_dict(saved["model"])
    lo, hi = saved["range"]
    quantize_embedding(tuned, lo, hi, bits)
    tuned.eval()
    for p in tuned.parameters():
        p.requires_grad_(False)
    loss_fn.set_teacher_feature_range(lo, hi)
    return tuned
