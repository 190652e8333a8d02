"""Do the training-free proxies predict the student that distils best? Kendall tau between each
proxy's score and the final INT8 accuracy of every candidate, fully distilled the same way.

    python benchmarks/search_proxies.py [--epochs 8] [--out benchmarks/results/search_proxies.json]

Teacher: the example resnet18 (10 epochs, examples/digits/train_teacher.py). Each candidate:
proxies on one seeded batch of 64 training images (as `edgekd search` computes them), then KD
(kd loss, AdamW one-cycle lr 1e-2, batch 64, `--epochs`, deterministic transform so the
teacher is cached) and INT8 PTQ with Model Optimizer (max, 256 images); accuracy = top-1 of
the INT8 fake-quant model on the 360 val images. The params baseline is in the same table:
a proxy matters only above it. Goal (issue 4): DisWOT tau >= 0.5 and above the baseline.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch
from scipy.stats import kendalltau

from edgekd._io import write_json
from edgekd.data.digits import digits_bundle
from edgekd.distill import TrainConfig, distill, evaluate_torch
from edgekd.models import create_timm
from edgekd.quant import quantize_int8
from edgekd.search.search import score_candidate, scoring_batch

ROOT = Path(__file__).resolve().parents[1]
CANDIDATES = [
    "lcnet_050", "lcnet_075", "lcnet_100", "mobilenetv3_small_050", "mobilenetv3_small_075",
    "mobilenetv3_small_100", "mobilenetv4_conv_small_050", "tinynet_e", "ghostnet_050",
    "regnetx_002", "resnet10t", "mobilenetv4_conv_small",
]  # fmt: skip
PROXIES = ("diswot", "naswot", "synflow", "gradnorm", "params")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--candidates", nargs="+", default=CANDIDATES)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/search_proxies.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from kd_losses import teacher_model  # benchmarks/ is on sys.path when run as a script

    teacher, teacher_desc = teacher_model(None)
    data = digits_bundle(augment=False)
    x, y = scoring_batch(teacher, data, 64, 0)  # the batch `edgekd search` scores on
    calib = data.calibration_subset(256, 0)
    rows = []
    for name in args.candidates:
        torch.manual_seed(0)
        model = create_timm(name, data.num_classes)
        t0 = time.perf_counter()
        scores = score_candidate(teacher, model, x, y)
        score_s = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as d:
            res = distill(model, teacher, data, TrainConfig(args.epochs, 1e-2, seed=0), d)
            model.load_state_dict(torch.load(res.best_path, weights_only=True)["model"])
        q = quantize_int8(model, calib, 64, method="max")
        acc, _ = evaluate_torch(q, data.val)
        rows.append({"candidate": name, "int8_top1": acc, "fp32_top1": res.best_val_acc,
                     "scores": scores, "score_s": score_s})  # fmt: skip
        print(f"{name:28s} int8 {acc:6.2f}%  diswot {scores['diswot']:.4f}  "
              f"params {scores['params']:.0f}", flush=True)  # fmt: skip
    acc = [r["int8_top1"] for r in rows]
    taus = {}
    for p in PROXIES:
        tau, pval = kendalltau([r["scores"][p] for r in rows], acc)
        taus[p] = {"tau": float(tau), "p_value": float(pval)}
    print(f"\nKendall tau vs INT8 top-1 over {len(rows)} candidates "
          f"({teacher_desc}, {args.epochs} epochs KD):")  # fmt: skip
    for p, t in taus.items():
        print(f"  {p:9s} tau {t['tau']:+.3f} (p {t['p_value']:.3f})")
    write_json(args.out, {
        "command": f"python benchmarks/search_proxies.py --epochs {args.epochs}",
        "machine": {"platform": platform.platform(), "torch": torch.__version__,
                    "threads": args.threads},  # fmt: skip
        "teacher": teacher_desc, "epochs": args.epochs, "rows": rows, "kendall_tau": taus,
        "goal_diswot_tau_ge_0_5_and_above_params": taus["diswot"]["tau"] >= 0.5
        and taus["diswot"]["tau"] > taus["params"]["tau"],
    })  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
