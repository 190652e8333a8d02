"""`edgekd profile MODEL.onnx --target T`: measured latency on the host, predicted elsewhere."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from edgekd.cli._common import (
    DEFAULT_TRTEXEC,
    Debug,
    RemotePython,
    SshOptions,
    Trtexec,
    guarded,
)


def profile_command(
    model: Annotated[Path | None, typer.Argument(help="ONNX model to time or cost.")] = None,
    target: Annotated[str, typer.Option(help="Target profile name or YAML path.")] = "host",
    precision: Annotated[
        str | None,
        typer.Option(
            help="Predict a float ONNX as the target's runtime would build it: fp32, fp16 or int8 "
            "(TensorRT --fp16 / --int8). A Q/DQ ONNX is costed as quantized."
        ),
    ] = None,
    threads: Annotated[
        int | None, typer.Option(help="ONNX Runtime threads (default: the target's).")
    ] = None,
    warmup: Annotated[int, typer.Option(help="Untimed runs before timing.")] = 50,
    iters: Annotated[int, typer.Option(help="Timed runs.")] = 300,
    batch: Annotated[int, typer.Option(help="Batch size for measurement.")] = 1,
    layers: Annotated[int, typer.Option(help="Show the N slowest layers.")] = 10,
    predict: Annotated[
        bool, typer.Option(help="Use the cost model even where the target can be measured.")
    ] = False,
    calibrate: Annotated[
        bool,
        typer.Option(
            help="Fit the host cost model to measurements of a fixed set of timm models and "
            "write it to the user profile."
        ),
    ] = False,
    device: Annotated[
        str | None,
        typer.Option(
            help="Measure on the device over SSH: user@host[:port]. TensorRT targets build and "
            "time an engine with the device's trtexec; CPU targets run ONNX Runtime there."
        ),
    ] = None,
    ssh_option: SshOptions = None,
    trtexec: Trtexec = DEFAULT_TRTEXEC,
    remote_python: RemotePython = "python3",
    data: Annotated[
        str | None,
        typer.Option(
            help="With --device on a CPU target: also top-1 of the model on this data's "
            "test set (its val set when it has none), on the device and here (digits, "
            "fashion-mnist[:PATH], a folder, or pkg.module:fn)."
        ),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds per remote command.")] = 600,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    debug: Debug = False,
) -> None:
    """Latency of an ONNX model on a target: measured with ONNX Runtime where edgekd runs on
    the target (host), measured on the device itself with --device user@host, predicted by
    the cost model otherwise (labelled predicted)."""

    def body() -> None:
        from edgekd.errors import InputError
        from edgekd.profiling import profile as prof

        if calibrate:
            result = prof.calibrate_host(target, progress=None if as_json else _say)
            _emit(result, as_json)
            return
        if model is None:
            raise InputError("no model given", fix="pass MODEL.onnx (or --calibrate)")
        if device is not None:
            if not model.is_file():
                raise InputError("model file not found", value=str(model))
            result = prof.profile_remote(
                model,
                target,
                device,
                ssh_options=tuple(ssh_option or ()),
                precision=precision,
                threads=threads,
                warmup=warmup,
                iters=iters,
                trtexec=trtexec,
                python=remote_python,
                data=data,
                timeout=timeout,
            )
            _emit(result, as_json)
            return
        result = prof.profile_model(
            model,
            target,
            precision=precision,
            threads=threads,
            warmup=warmup,
            iters=iters,
            batch=batch,
            force_predict=predict,
            top=layers,
        )
        _emit(result, as_json)

    guarded(body, debug=debug)


def _say(text: str) -> None:
    sys.stderr.write(text + "\n")


def _emit(result: dict, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
        return
    from edgekd.profiling.profile import render_text

    sys.stdout.write(render_text(result))
