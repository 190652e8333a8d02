"""Every bad or hostile input, as a table: case, input, expected line, expected exit.

Each row runs the real CLI (typer's runner, in this process) and must end with exit 1 and one
line on stderr starting "error: " that holds every expected phrase, with nothing in the
case's folder changed (no file added, removed or rewritten; no planted payload run).

Read CASES as the list. Held cases of the issue-24 probe that need a finished run or a killed
process live beside the code they exercise: SIGKILL then --resume in every stage and Ctrl-C
(tests/cli/test_reliability.py), a flipped byte / deleted file / symlinked artifact before
--resume (tests/pipeline/test_runner.py, tests/cli/test_reliability.py), disk full
(test_reliability.py), hostile class names in report.html (tests/report/test_render_chromium.py).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from tests.cli.test_cli_runner import invoke, one_line
from tests.data.test_folder import make_folder

ROOT = Path(__file__).resolve().parents[2]
JETSON = ROOT / "targets" / "jetson-orin-nano-8gb.yaml"


@dataclass(frozen=True)
class Case:
    name: str
    argv: Callable[[Path, dict], list[str]]  # (the case's folder, shared files) -> arguments
    expect: tuple[str, ...]  # phrases the one error line holds
    command: str = "compress"


def _teacher(fx) -> str:
    return str(fx["teacher"])


def _copy_teacher(tmp: Path, fx, rel: str) -> Path:
    p = tmp / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(Path(fx["teacher"]).read_bytes())
    return p


def _save(tmp: Path, name: str, obj) -> str:
    torch.save(obj, tmp / name)
    return str(tmp / name)


class _System:
    """Unpickles into os.system("touch ran")."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def _profile(tmp: Path, change: Callable[[str], str]) -> str:
    p = tmp / "target.yaml"
    p.write_text(change(JETSON.read_text()))
    return str(p)


def _line(key: str, value: str) -> Callable[[str], str]:
    """Replace the YAML line `key: ...` with `key: value`."""

    def change(text: str) -> str:
        lines = text.splitlines()
        i = next(i for i, ln in enumerate(lines) if ln.startswith(f"{key}:"))
        lines[i] = f"{key}: {value}"
        return "\n".join(lines) + "\n"

    return change


def _pt2(builder_name: str):
    def argv(tmp: Path, fx) -> list[str]:
        from tests.models import test_pt2_safety as plants

        evil = getattr(plants, builder_name)(fx["clean_pt2"], tmp, tmp / "ran")
        return [str(evil), "--out", str(tmp / "run")]

    return argv


def _earlier_run(tmp: Path, *written: str) -> Path:
    run = tmp / "run"
    rec = {"name": "distill", "key": "k", "status": "finished", "outputs": {}, "written": written}
    run.mkdir(parents=True, exist_ok=True)
    (run / "manifest.json").write_text(json.dumps({"manifest_version": 1, "stages": [rec]}))
    return run


def _symlinked_stage_folder(tmp: Path, fx) -> list[str]:
    run = _earlier_run(tmp)
    (tmp / "elsewhere").mkdir()
    (tmp / "elsewhere" / "keep.txt").write_text("keep")
    (run / "distill").symlink_to(tmp / "elsewhere")
    return [_teacher(fx), "--out", str(run), "--force"]


def _truncated_manifest(tmp: Path, fx) -> list[str]:
    run = _earlier_run(tmp)
    (run / "manifest.json").write_text('{"manifest_version": 1, "stag')
    return [_teacher(fx), "--out", str(run), "--resume"]


def _locked(tmp: Path, fx) -> list[str]:
    run = _earlier_run(tmp)
    (run / ".edgekd.lock").write_text("")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
         "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
         str(run / ".edgekd.lock")], stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert holder.stdout.readline().strip() == "held"
    fx["cleanup"].append(holder.kill)
    return [_teacher(fx), "--out", str(run), "--resume"]


def _crashed_run(tmp: Path) -> Path:
    run = tmp / "run"
    recs = [{"name": "teacher", "key": "k", "status": "finished", "outputs": {}},
            {"name": "distill", "key": "k", "status": "failed", "outputs": {}}]  # fmt: skip
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps({"manifest_version": 1, "stages": recs}))
    return run


def _non_image_class(tmp: Path, fx) -> list[str]:
    data = make_folder(tmp / "imgs", classes=tuple("abcdefghij"), per_class=1, size=8)
    for f in (data / "train" / "c").iterdir():
        f.unlink()
    (data / "train" / "c" / "notes.txt").write_text("not an image")
    return [_teacher(fx), "--data", str(data), "--out", str(tmp / "run")]


CASES = [
    # the teacher file
    Case("missing teacher", lambda t, fx: [str(t / "nope.pt"), "--out", str(t / "run")],
         ("teacher file not found", "nope.pt")),
    Case("empty teacher", lambda t, fx: [_save_bytes(t, "e.pt", b""), "--out", str(t / "r")],
         ("teacher file is empty",)),
    Case("truncated teacher",
         lambda t, fx: [_save_bytes(t, "j.pt", Path(fx["teacher"]).read_bytes()[:500])],
         ("corrupt or truncated",)),
    Case("pickled nn.Module", lambda t, fx: [_save(t, "m.pt", torch.nn.Linear(2, 2))],
         ("pickled python objects", "torch.nn.modules.linear.Linear", "--trust-pickle")),
    Case("pickle calling os.system", lambda t, fx: [_save(t, "s.pt", _System(t / "ran"))],
         ("pickled python objects", "system", "a module torch blocks outright")),
    Case("--normalize for built-in data",
         lambda t, fx: [_teacher(fx), "--data", "digits", "--normalize", "none"],
         ("--normalize applies to image folders", "--data digits")),
    Case("--normalize with a bad value",
         lambda t, fx: [_teacher(fx), "--data", str(fx["folder"]), "--normalize", "0.5/0"],
         ("--normalize needs finite means and positive stds", "0.5/0")),
    Case("ONNX teacher with a feature loss",
         lambda t, fx: [str(fx["onnx10"]), "--data", "digits", "--kd-loss", "fitnet"],
         ("the fitnet loss compares the teacher's features", "ONNX teacher", "--kd-loss kd")),
    Case("ONNX model that is no classifier",
         lambda t, fx: [str(fx["onnx_conv"]), "--data", "digits", "--input-shape", "3,8,8"],
         ("teacher must return logits of shape [N, classes]",)),
    Case("ONNX teacher for other classes", lambda t, fx: [str(fx["onnx"]), "--data", "digits"],
         ("teacher's output classes do not match the data", "teacher 7 vs data 10")),
    Case("plain state dict without --arch",
         lambda t, fx: [_save(t, "sd.pt", {"fc.weight": torch.zeros(10, 4)})], ("--arch",)),
    Case("state dict claiming 1e11 classes",
         lambda t, fx: [_save(t, "c.pt", {"fc.weight": torch.zeros(10**11, 0)}), "--arch",
                        "resnet18"], ("10000000000", "outside 1..100000")),
    Case("checkpoint claiming a 100000x100000 input",
         lambda t, fx: [_save(t, "big.pt", {"arch": "resnet10t", "num_classes": 10,
                                             "input_shape": [3, 100000, 100000],
                                             "state_dict": fx["state_dict"]})],
         ("input_shape", "exceeds 1024")),
    Case("ViT state dict trained at 32x32 with patch 8, without --arch-args",
         lambda t, fx: [_save(t, "vit.pt", fx["vit_sd"]), "--arch", "deit_tiny_patch16_224",
                        "--input-shape", "3,32,32"],
         ("another input size or patch size", "--arch-args patch_size=N")),
    Case("--arch-args that are not KEY=VALUE",
         lambda t, fx: [_teacher(fx), "--arch-args", "patch_size"], ("--arch-args", "KEY=VALUE")),
    Case(".pt2 with a use_pickle weight", _pt2("_pickled_weight"),
         ("pickled tensor 'conv.weight'", "--trust-pickle")),
    Case(".pt2 with an opaque pickled constant", _pt2("_opaque_constant"), ("'evil'",)),
    Case(".pt2 with pickled sample inputs", _pt2("_sample_inputs"), ("sample_inputs",)),
    Case(".pt2 with code in a shape expression", _pt2("_sympy_expr"),
         ("shape expression that is not arithmetic",)),
    Case(".pt2 with code in guards_code", _pt2("_guard"), ("guard code",)),
    Case(".pt2 calling torch.os.system", _pt2("_os_target"), ("torch.os.system",)),
    Case(".pt2 with an AOTInductor library", _pt2("_compiled"), ("compiled code",)),
    Case("unknown timm teacher", lambda t, fx: ["timm:resnet1888"], ("unknown timm model",)),
    # options
    Case("input shape too large", lambda t, fx: [_teacher(fx), "--input-shape", "3,4096,4096"],
         ("--input-shape", "exceeds 1024")),
    Case("input shape with 64 channels",
         lambda t, fx: [_teacher(fx), "--input-shape", "64,32,32"], ("64 channels",)),
    Case("input shape of two numbers", lambda t, fx: [_teacher(fx), "--input-shape", "3,32"],
         ("--input-shape", "three positive integers")),
    Case("latency budget NaN", lambda t, fx: [_teacher(fx), "--latency-budget-ms", "nan"],
         ("--latency-budget-ms", "finite")),
    Case("latency budget inf", lambda t, fx: [_teacher(fx), "--latency-budget-ms", "inf"],
         ("--latency-budget-ms", "finite")),
    Case("latency budget 0", lambda t, fx: [_teacher(fx), "--latency-budget-ms", "0"],
         ("--latency-budget-ms",)),
    Case("negative accuracy drop", lambda t, fx: [_teacher(fx), "--max-accuracy-drop", "-1"],
         ("--max-accuracy-drop",)),
    Case("zero epochs", lambda t, fx: [_teacher(fx), "--epochs", "0"], ("--epochs",)),
    Case("--force with --resume", lambda t, fx: [_teacher(fx), "--force", "--resume"],
         ("--force and --resume contradict",)),
    Case("-v with -q", lambda t, fx: [_teacher(fx), "-v", "-q"], ("--verbose and --quiet",)),
    Case("unknown student", lambda t, fx: [_teacher(fx), "--student", "mobilenetv9"],
         ("unknown timm model", "mobilenetv9")),
    # target profiles: strings go into build_engine.sh, numbers into strict JSON
    Case("newline in a profile description",
         lambda t, fx: [_teacher(fx), "--target",
                        _profile(t, _line("description", '"x\\ntouch /tmp/pwned"'))],
         ("description holds a control character (U+000A)",)),
    Case("newline in runtime_version",
         lambda t, fx: [_teacher(fx), "--target",
                        _profile(t, _line("runtime_version", '"10.3\\nid"'))],
         ("runtime_version holds a control character",)),
    Case("line separator in jetpack",
         lambda t, fx: [_teacher(fx), "--target", _profile(t, _line("jetpack", '"6.2\\u2028"'))],
         ("jetpack holds a control character (U+2028)",)),
    Case("escape sequence in a source",
         lambda t, fx: [_teacher(fx), "--target", _profile(
             t, lambda s: s.replace("sources:\n", 'sources:\n  x: "\\e[2J"\n'))],
         ("sources.x holds a control character (U+001B)",)),
    Case("NaN peak",
         lambda t, fx: [_teacher(fx), "--target",
                        _profile(t, lambda s: s.replace("fp16: 10.2", "fp16: .nan", 1))],
         ("peak_tops.fp16 is nan", "finite")),
    Case("infinite layer overhead",
         lambda t, fx: [_teacher(fx), "--target", _profile(
             t, lambda s: s.replace("layer_overhead_us:", "layer_overhead_us: .inf #", 1))],
         ("layer_overhead_us is inf",)),
    Case("YAML object tag", lambda t, fx: [_teacher(fx), "--target", _profile(
        t, lambda s: "!!python/object/apply:os.system ['touch /tmp/pwned']\n")],
         ("not valid YAML",)),
    Case("unknown target", lambda t, fx: [_teacher(fx), "--target", "jetsonn"],
         ("unknown target", "jetsonn")),
    # data
    Case("class folder without images", _non_image_class,
         ("class folder holds no images", "1 other file(s): .txt")),
    Case("missing data folder", lambda t, fx: [_teacher(fx), "--data", str(t / "nope")],
         ("data source not found",)),
    Case("one-class folder",
         lambda t, fx: [_teacher(fx), "--data",
                        str(make_folder(t / "one", classes=("only",)))], ("only one class",)),
    Case("folder without val/",
         lambda t, fx: [_teacher(fx), "--data", str(_without_val(t))], ("no val/ subfolder",)),
    Case("data factory that does not import",
         lambda t, fx: [_teacher(fx), "--data", "nosuchmod_xyz:make"],
         ("cannot import data factory",)),
    Case("teacher classes do not match the data",
         lambda t, fx: [_teacher(fx), "--data", str(make_folder(t / "three",
                        classes=("a", "b", "c"))), "--input-shape", "3,32,32"],
         ("classes do not match", "10 vs data 3")),
    Case("TorchScript teacher at another input shape",
         lambda t, fx: [str(fx["fixed_ts"]), "--input-shape", "3,16,16"],
         ("cannot run on input shape 3,16,16", "--input-shape")),
    # the run directory
    Case("--out /", lambda t, fx: [_teacher(fx), "--out", "/", "--force"],
         ("refusing to use this folder",)),
    Case("--out a folder that is not a run",
         lambda t, fx: [_teacher(fx), "--out", str(_with_file(t / "proj", "thesis.tex")),
                        "--force"], ("not an edgekd run", "thesis.tex")),
    Case("--force would delete the teacher",
         lambda t, fx: [str(_copy_teacher(_earlier_run(t, "distill/s.pt"), fx, "distill/s.pt")),
                        "--out", str(t / "run"), "--force"], ("--force would delete an input",)),
    Case("symlinked stage folder", _symlinked_stage_folder, ("symlink where edgekd writes",)),
    Case("truncated manifest on --resume", _truncated_manifest,
         ("manifest.json is unreadable", "--force")),
    Case("run directory locked by another run", _locked, ("another edgekd run is using",)),
    # the other commands
    Case("verify a run that crashed",
         lambda t, fx: [str(_crashed_run(t))], ("the run is incomplete", "stage distill (failed)",
                                               "--resume"), command="verify"),
    Case("verify a folder without a manifest", lambda t, fx: [str(t)], ("no manifest.json",),
         command="verify"),
    Case("verify a truncated manifest", lambda t, fx: [str(_truncated_manifest(t, fx)[2])],
         ("manifest.json is unreadable",), command="verify"),
    Case("report a folder without report.json", lambda t, fx: [str(t)],
         ("no report.json",), command="report"),
    Case("report a damaged report.json",
         lambda t, fx: [str(_with_file(t / "r", "report.json"))],
         ("report.json does not match the report schema",), command="report"),
    Case("profile against a NaN target",
         lambda t, fx: [str(fx["onnx"]), "--target",
                        _profile(t, lambda s: s.replace("fp16: 10.2", "fp16: .nan", 1))],
         ("peak_tops.fp16 is nan",), command="profile"),
    Case("profile against a target with a newline",
         lambda t, fx: [str(fx["onnx"]), "--target", _profile(t, _line("jetpack", '"6\\nid"'))],
         ("jetpack holds a control character",), command="profile"),
    Case("unwritable --out", lambda t, fx: [_teacher(fx), "--out",
                                            str(_with_file(t, "afile") / "afile" / "run")],
         ("cannot write the run directory",)),
]


def _without_val(tmp: Path) -> Path:
    import shutil

    data = make_folder(tmp / "no_val", classes=("a", "b"))
    shutil.rmtree(data / "val")
    return data


def _save_bytes(tmp: Path, name: str, data: bytes) -> str:
    (tmp / name).write_bytes(data)
    return str(tmp / name)


def _with_file(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("mine")
    return folder


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink() and p.name != ".edgekd.lock"
    }


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    """Shared files: a random resnet10t checkpoint, an ONNX model, a clean .pt2."""
    from edgekd.models import create_timm, save_checkpoint
    from tests.models.test_pt2_safety import X, _Net

    d = tmp_path_factory.mktemp("fx")
    torch.manual_seed(0)
    net = create_timm("resnet10t", 10)
    teacher = save_checkpoint(d / "teacher.pt", net, "resnet10t", 10, (3, 32, 32))
    onnx, onnx_conv = d / "teacher.onnx", d / "conv.onnx"
    torch.onnx.export(torch.nn.Conv2d(3, 4, 3).eval(), (torch.zeros(1, 3, 8, 8),),
                      str(onnx_conv), dynamo=False)  # fmt: skip
    seven = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 7)).eval()
    torch.onnx.export(seven, (torch.zeros(1, 3, 32, 32),), str(onnx), dynamo=False)
    ten = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10)).eval()
    torch.onnx.export(ten, (torch.zeros(1, 3, 32, 32),), str(d / "ten.onnx"), dynamo=False)
    ep = torch.export.export(_Net().eval(), (X,),
                             dynamic_shapes={"x": {0: torch.export.Dim("b", max=64)}})  # fmt: skip
    torch.export.save(ep, str(d / "clean.pt2"))
    flat = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10)).eval()
    torch.jit.trace(flat, torch.zeros(1, 3, 32, 32)).save(str(d / "fixed.ts"))
    import timm

    vit = timm.create_model("deit_tiny_patch16_224", num_classes=10, img_size=32, patch_size=8)
    from tests.data.test_folder import make_folder

    folder = make_folder(d / "imgs", classes=[str(i) for i in range(10)], per_class=1, size=8)
    shared = {"teacher": teacher, "folder": folder, "onnx": onnx, "onnx_conv": onnx_conv,
              "onnx10": d / "ten.onnx", "clean_pt2": d / "clean.pt2",
              "vit_sd": vit.state_dict(),
              "fixed_ts": d / "fixed.ts",
              "state_dict": net.state_dict(), "cleanup": []}  # fmt: skip
    yield shared
    for stop in shared["cleanup"]:
        stop()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case, fx, tmp_path):
    tmp = tmp_path / "case"
    tmp.mkdir()
    args = case.argv(tmp, fx)
    if case.command == "compress" and "--out" not in args:
        args += ["--out", str(tmp / "run")]
    before = _snapshot(tmp)
    one_line(invoke(case.command, *args), *case.expect)
    assert _snapshot(tmp) == before, "a refused input changed files in its folder"
    assert not (tmp / "ran").exists(), "a planted payload ran"

