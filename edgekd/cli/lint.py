"""`edgekd lint MODEL.onnx --trt 8.5`: will this ONNX build (well) with that TensorRT?"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from edgekd.cli._common import Debug, fail, guarded


def lint_command(
    model: Annotated[Path, typer.Argument(help="ONNX model to check.")],
    trt: Annotated[
        str | None,
        typer.Option(help="TensorRT version, e.g. 8.5 or 10.3 (default: the --target's)."),
    ] = None,
    target: Annotated[
        str, typer.Option(help="Target profile whose TensorRT version to check against.")
    ] = "jetson",
    dla: Annotated[
        bool, typer.Option("--dla", help="Also check what DLA needs (static shapes).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    debug: Debug = False,
) -> None:
    """TensorRT compatibility lint: opset range per TensorRT version, unsupported ops, Q/DQ
    rules (INT8 only, zero point 0, positive scales, per-channel weights on axis 0, activations
    per tensor, opsets, scale types under strong typing), DLA shapes, residual Adds left in
    float, float islands. Exit 1 when any error is found."""

    def body() -> None:
        from edgekd.errors import InputError
        from edgekd.export.lint import lint_file, summarize
        from edgekd.targets import get_target

        version = trt
        if version is None:
            prof = get_target(target)
            if prof.runtime != "tensorrt":
                raise InputError(
                    f"target {prof.name!r} does not run TensorRT",
                    fix="pass --trt VERSION or a TensorRT --target",
                )
            version = prof.runtime_version
        findings = lint_file(model, version, dla=dla)
        s = summarize(findings)
        if as_json:
            sys.stdout.write(
                json.dumps({"model": str(model), "tensorrt": version, **s}, indent=2) + "\n"
            )
        else:
            for f in findings:
                sys.stdout.write(
                    f"{f.severity:7s} {f.rule:20s} {f.node}: {f.message}; fix: {f.fix}\n"
                )
            sys.stdout.write(
                f"{model}: {s['errors']} error(s), {s['warnings']} warning(s) for "
                f"TensorRT {version}\n"
            )
        if s["errors"]:
            first = next(f for f in findings if f.severity == "error")
            raise fail(
                f"{s['errors']} TensorRT compatibility error(s) in {model}, first: "
                f"{first.rule} at {first.node}: {first.message}; {first.fix}"
            )

    guarded(body, debug=debug)
