"""What `edgekd profile` does: measure on the host, predict elsewhere, calibrate the host."""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from edgekd._io import write_text
from edgekd.errors import InputError
from edgekd.latency.cost import predict_latency
from edgekd.latency.graph import float_type, is_quantized, load_onnx
from edgekd.targets import get_target, user_profiles_dir


def _input_shape(model) -> tuple[int, ...]:
    dims = model.graph.input[0].type.tensor_type.shape.dim
    shape = tuple(d.dim_value for d in dims[1:])
    if not shape or any(d <= 0 for d in shape):
        raise InputError(
            "model input has dynamic non-batch dimensions",
            value=shape,
            fix="export with fixed C,H,W (only the batch axis may be dynamic)",
        )
    return shape


def profile_model(
    model_path: str | Path,
    target_name: str,
    *,
    precision: str | None = None,
    threads: int | None = None,
    warmup: int = 50,
    iters: int = 300,
    batch: int = 1,
    force_predict: bool = False,
    top: int = 10,
) -> dict:
    """Latency of an ONNX model on a target: measured when the target is this machine,
    otherwise predicted by the target's cost model (and labelled so)."""
    target = get_target(target_name)
    model = load_onnx(model_path)
    out: dict = {"model": str(model_path), "target": target.name, "runtime": target.runtime}
    if target.cost_model is not None:
        pred = predict_latency(model_path, target, precision)
        out["predicted"] = pred.to_dict(top=top)
    if target.measured and not force_predict:
        if precision not in (None, "fp32") and precision not in target.precisions:
            raise InputError(
                f"target {target.name!r} has no {precision} path", valid=target.precisions
            )
        from edgekd.backends import onnxruntime as ortb

        n_threads = threads or target.threads or 1
        rep = ortb.profile(
            model_path,
            _input_shape(model),
            threads=n_threads,
            warmup=warmup,
            iters=iters,
            batch=batch,
        )
        out["measured"] = rep.to_dict()
    elif "predicted" not in out:
        raise InputError(
            f"target {target.name!r} can neither be measured here nor predicted",
            fix="add a cost_model to its profile",
        )
    return out


def render_text(result: dict) -> str:
    lines = []
    if "calibration" in result:
        c = result["calibration"]
        lines.append(
            f"host cost model fitted on {c['samples']} measurements: median error "
            f"{c['median_abs_pct_error']:.1f}%, Spearman {c['spearman']:.3f}"
        )
        lines.append(f"written to {result['written_to']}")
        return "\n".join(lines) + "\n"
    lines.append(f"{result['model']} on {result['target']} ({result['runtime']})")
    if "measured" in result:
        m = result["measured"]
        lines.append(
            f"measured: min {m['min_ms']:.3f}  p50 {m['p50_ms']:.3f}  p90 {m['p90_ms']:.3f}  "
            f"p99 {m['p99_ms']:.3f}  mean {m['mean_ms']:.3f} ms; {m['throughput_ips']:.1f} "
            f"inferences/s (batch {m['batch']}, {m['threads']} thread(s), {m['warmup']} "
            f"warm-up, {m['iters']} runs)"
            + (f" on {result['device']}: {m['runtime']}" if "device" in result else "")
        )
        if m.get("noise"):
            lines.append(
                f"warning: unreliable after {m.get('attempts', 1)} measurement(s): {m['noise']}; "
                "rerun on a quiet machine (or with fewer --threads than free cores)"
            )
        facts = m.get("facts") or {}
        if facts.get("jetson"):
            lines.append(
                f"device: {facts.get('model')}, L4T {facts.get('l4t')}, power mode "
                f"{facts.get('power_mode')}"
            )
            if facts.get("clocks_fixed") is False:
                lines.append(
                    "warning: GPU clocks are not fixed (run sudo jetson_clocks): timings vary"
                )
    if "accuracy" in result:
        a = result["accuracy"]
        lines.append(
            f"accuracy on {a['data']} val ({a['n']} images): device {a['device_top1']:.2f}%, "
            f"host {a['host_top1']:.2f}%, agreement {a['agreement']:.2f}% ({a['runtime']})"
        )
    if "predicted" in result:
        p = result["predicted"]
        lines.append(
            f"predicted ({p['precision']}, cost model, not measured): "
            f"{p['total_ms']:.3f} ms, {p['gflops']:.3f} GFLOPs, "
            f"{p['layers_costed']} layers"
        )
        if p.get("range_ms"):
            lo, hi = p["range_ms"]
            lines.append(
                f"range: {lo:.3f}-{hi:.3f} ms (the central {p['range_coverage']:.0%} of "
                "published / predicted over published figures each predicted by a fit that "
                f"never saw it; edgekd targets show {result['target']}: prediction_range)"
            )
        elif "measured" not in result:
            lines.append(
                "range: none (no published figures held out for this profile's cost model; "
                "treat the figure as a rough guide)"
            )
        lines.append(
            f"  {'layer':40s} {'op':14s} {'prec':5s} {'MFLOPs':>9s} {'KB':>9s} {'ms':>8s}  bound"
        )
        for r in p["layers"]:
            lines.append(
                f"  {r['name'][:40]:40s} {r['op'][:14]:14s} {r['precision']:5s} "
                f"{r['flops'] / 1e6:9.2f} {r['bytes'] / 1e3:9.1f} {r['ms']:8.4f}  "
                f"{r['bound']}"
            )
    return "\n".join(lines) + "\n"


def calibrate_host(target_name: str = "host", progress=None) -> dict:
    """Fit the host cost model and write it to the user's profile folder."""
    from edgekd.profiling.calibrate import calibrate_host as fit

    target = get_target(target_name)
    if not target.measured:
        raise InputError(
            f"target {target.name!r} is not this machine; only the host can be calibrated here",
            fix="use --target host (Jetson profiles are fitted to published figures)",
        )
    t0 = time.perf_counter()
    params, stats = fit(target, progress=progress)
    data = target.model_dump(mode="json")
    data["cost_model"] = params.model_dump(mode="json")
    data["fit"] = {k: v for k, v in stats.items() if k != "rows"} | {
        "seconds": time.perf_counter() - t0,
        "date": time.strftime("%Y-%m-%d"),
    }
    data["sources"] = data["sources"] | {
        "cost_model": "edgekd profile --calibrate --target host on this machine (see fit)"
    }
    path = user_profiles_dir() / f"{target.name}.yaml"
    write_text(path, yaml.safe_dump(data, sort_keys=False))
    return {"calibration": stats, "written_to": str(path), "cost_model": data["cost_model"]}


def profile_remote(
    model_path: str | Path,
    target_name: str,
    device: str,
    *,
    ssh_options: tuple[str, ...] = (),
    precision: str | None = None,
    threads: int | None = None,
    warmup: int = 50,
    iters: int = 300,
    trtexec: str | None = None,
    python: str = "python3",
    out_dir: str | Path | None = None,
    data: str | None = None,
    timeout: float = 600,
) -> dict:
    """Latency (and with `data`, accuracy) of an ONNX model measured on the device over SSH:
    TensorRT targets build and time an engine with the device's trtexec; ONNX Runtime
    targets run the agent there. The prediction for the target is kept beside it."""
    from edgekd.latency.remote import DEFAULT_TRTEXEC, RemoteRunner

    target = get_target(target_name)
    model = load_onnx(model_path)
    runner = RemoteRunner(device, ssh_options, timeout=timeout)
    out: dict = {
        "model": str(model_path),
        "target": target.name,
        "runtime": target.runtime,
        "device": str(runner.dest),
    }
    if target.cost_model is not None:
        out["predicted"] = predict_latency(model_path, target, precision).to_dict(top=10)
    shape = _input_shape(model)
    if target.runtime == "tensorrt":
        from edgekd.backends.trt_build import onnx_facts, trtexec_args
        from edgekd.latency.remote import trtexec_remote
        from edgekd.latency.trtexec import parse_layer_profile, trtexec_latency

        prec = precision or _onnx_precision(model)
        dest = Path(out_dir or Path(model_path).with_suffix("").as_posix() + "-trt")
        build = trtexec_remote(
            runner,
            Path(model_path),
            trtexec_args(target, prec, shape, onnx=onnx_facts(model_path)),
            dest,
            stem=f"model-{prec}",
            trtexec=trtexec or DEFAULT_TRTEXEC,
        )
        out["measured"] = trtexec_latency(build.result, f"TensorRT on {runner.dest}")
        out["trtexec"] = build.result.to_dict()
        out["engine"] = str(build.engine)
        if build.layer_profile is not None:
            from edgekd.latency.layer_table import learn_from_trtexec

            layers = parse_layer_profile(build.layer_profile.read_text())
            out["layers"] = [vars(layer) for layer in layers[:20]]
            out["layer_table"] = learn_from_trtexec(model_path, target, prec, build.layer_profile)
        return out
    from edgekd.latency.remote import accuracy_remote, profile_onnx_remote

    n_threads = threads or target.threads or 1
    out["measured"] = profile_onnx_remote(
        runner, Path(model_path), threads=n_threads, warmup=warmup, iters=iters, python=python
    )
    out["measured"]["throughput_ips"] = 1e3 / out["measured"]["mean_ms"]
    if data is not None:
        from edgekd.backends import onnxruntime as ortb
        from edgekd.data import load_data, stack_inputs

        bundle = load_data(data, shape)
        x, y = stack_inputs(bundle.report_set)
        remote = accuracy_remote(runner, Path(model_path), x.numpy(), y.numpy(), python=python)
        local = ortb.predict(model_path, bundle.report_set, threads=n_threads).argmax(1)
        agree = sum(int(a == b) for a, b in zip(remote["predictions"], local.tolist(), strict=True))
        out["accuracy"] = {
            "data": data,
            "split": bundle.report_split,
            "n": remote["n"],
            "device_top1": remote["top1"],
            "host_top1": float((local == y.numpy()).mean() * 100),
            "agreement": 100.0 * agree / remote["n"],
            "runtime": remote["runtime"],
        }
    return out


def _onnx_precision(model) -> str:
    """int8 for a Q/DQ graph, fp16 when its weights are FP16, else fp32."""
    return "int8" if is_quantized(model) else float_type(model)
