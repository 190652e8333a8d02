"""What every command shares: error handling (one line, exit 1), options, the rich reporter."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Callable
from typing import Annotated, TypeVar

import typer

from edgekd.errors import EdgekdError, Terminated
from edgekd.latency.remote import DEFAULT_TRTEXEC  # noqa: F401  (the CLI's default)

T = TypeVar("T")

Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the result lines.")]
# options of the commands that reach a device over SSH (compress --remote, profile --device)
SshOptions = Annotated[
    list[str] | None,
    typer.Option(
        help="An ssh -o option, e.g. IdentityFile=PATH (repeatable; ~/.ssh/config applies too)."
    ),
]
Trtexec = Annotated[
    str,
    typer.Option(help="trtexec on the device (default: JetPack's own).", show_default=False),
]
RemotePython = Annotated[
    str, typer.Option(help="Python on the device (numpy + onnxruntime, or tensorrt).")
]
# the student search's confirmation runs (edgekd search, compress --student search)
FewShotEpochs = Annotated[int, typer.Option(help="Epochs of each few-shot run.")]

# every command that reads --data
DataSource = Annotated[
    str,
    typer.Option(help="digits, fashion-mnist (or fashion-mnist:PATH to its IDX files), an image "
                 "folder, or pkg.module:fn."),
]  # fmt: skip
MaxTrain = Annotated[
    int | None,
    typer.Option(help="Train on N images only, stratified by class (seed 0); val and test stay "
                 "whole. A quick look at a large dataset.", show_default=False),
]  # fmt: skip

Normalize = Annotated[
    str | None,
    typer.Option(help="How an image folder's pixels are normalised, as the teacher was trained: "
                 "imagenet (default), none ([0, 1]), or MEAN/STD, one value or one per channel "
                 "(e.g. 0.286/0.353).", show_default=False),
]  # fmt: skip

EXIT_ERROR, EXIT_INTERRUPTED, EXIT_TERMINATED = 1, 130, 143


def fail(line: str, code: int = EXIT_ERROR) -> typer.Exit:
    sys.stderr.write(f"error: {line}\n")
    sys.stderr.flush()
    return typer.Exit(code)


def guarded(fn: Callable[[], T], *, debug: bool, verbose: bool = False) -> T:
    """Run a command body: EdgekdError -> one line and exit 1; Ctrl-C -> exit 130."""
    if not (debug or verbose):
        # third-party deprecation chatter (torch.onnx, modelopt plugins) is not the user's to fix
        warnings.simplefilter("ignore")
        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    previous = None
    # a follower rank under torchrun is stopped with SIGTERM when rank 0 fails: it stays quiet
    # (rank 0 prints the one error line), so only rank 0 (or a plain run) turns it into one
    leader = os.environ.get("RANK", "0") == "0"
    if leader and threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return fn()
    except typer.Exit:
        raise
    except EdgekdError as e:
        if debug:
            traceback.print_exc()
        raise fail(e.one_line(), e.exit_code) from None
    except Terminated:
        if debug:
            traceback.print_exc()
        raise fail(
            "terminated (SIGTERM); finished stages and the last epoch checkpoint are kept, "
            "rerun with --resume to continue",
            EXIT_TERMINATED,
        ) from None
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        raise fail(
            "interrupted; finished stages and the last epoch checkpoint are kept, "
            "rerun with --resume to continue",
            EXIT_INTERRUPTED,
        ) from None
    except Exception as e:
        if debug:
            traceback.print_exc()
        msg = " ".join(str(e).split())[:300]
        raise fail(
            f"unexpected {type(e).__name__}: {msg}; rerun with --debug for the traceback "
            "and report it if the input looks right"
        ) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _on_sigterm(signum, frame) -> None:
    raise Terminated()
