"""Planted .pt2 archives: each payload runs under torch.export.load (shown with trust), and
load_teacher refuses it without --trust-pickle, before anything of it runs.

Every attack below is one of the ways torch 2.14's loader runs code, read from its source
(torch/export/pt2_archive/_package.py, torch/_export/serde/serialize.py, torch/export/_unlift.py).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile

import pytest
import torch

from edgekd.errors import ModelLoadError
from edgekd.models import load_teacher
from edgekd.models.pt2_safety import safe_guard, safe_sympy, safe_target, unsafe_entries

X = torch.randn(2, 3, 8, 8)


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.register_buffer("scale", torch.ones(1))
        self.fc = torch.nn.Linear(4 * 36, 5)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x) * self.scale).flatten(1))


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """A plain archive, exported with a dynamic batch so it has symbolic expressions."""
    torch.manual_seed(0)
    p = tmp_path_factory.mktemp("pt2") / "clean.pt2"
    ep = torch.export.export(
        _Net().eval(), (X,), dynamic_shapes={"x": {0: torch.export.Dim("b", max=64)}}
    )
    torch.export.save(ep, str(p))
    return p


class _Payload:
    """Unpickling this runs `code` (through the GLOBAL builtins.eval)."""

    def __init__(self, code: str):
        self.code = code

    def __reduce__(self):
        return (eval, (self.code,))


_PARAM = "__import__('torch').nn.Parameter(__import__('torch').zeros(4, 3, 3, 3))"


def _touch(marker) -> str:
    return f"__import__('pathlib').Path({str(marker)!r}).touch()"


def _rewrite(src, dst, edit):
    """Copy the archive, letting edit(rel_name, bytes) -> bytes | None change or drop members,
    and edit(None, {}) add new ones."""
    with zipfile.ZipFile(src) as z, zipfile.ZipFile(dst, "w") as out:
        root = z.namelist()[0].split("/", 1)[0]
        for info in z.infolist():
            rel = info.filename.split("/", 1)[1]
            data = edit(rel, z.read(info))
            if data is not None:
                out.writestr(info.filename, data)
        for rel, data in (edit(None, {}) or {}).items():
            out.writestr(f"{root}/{rel}", data)
    return dst


def _edit_json(raw, change):
    obj = json.loads(raw)
    change(obj)
    return json.dumps(obj).encode()


def _pickled_weight(clean, tmp_path, marker):
    def edit(rel, data):
        if rel is None:
            return {}
        if rel == "data/weights/model_weights_config.json":

            def change(cfg):
                cfg["config"]["conv.weight"]["use_pickle"] = True

            return _edit_json(data, change)
        cfg = json.loads(
            zipfile.ZipFile(clean).read("clean/data/weights/model_weights_config.json")
        )
        if rel == "data/weights/" + cfg["config"]["conv.weight"]["path_name"]:
            buf = io.BytesIO()
            torch.save(_Payload(_touch(marker) + " or " + _PARAM), buf)
            return buf.getvalue()
        return data

    return _rewrite(clean, tmp_path / "pickled_weight.pt2", edit)


def _opaque_constant(clean, tmp_path, marker):
    def edit(rel, data):
        if rel is None:
            return {"data/constants/opaque_obj_0": pickle.dumps(_Payload(_touch(marker)))}
        if rel == "data/constants/model_constants_config.json":

            def change(cfg):
                cfg["config"]["evil"] = {"path_name": "opaque_obj_0", "is_param": False,
                                         "use_pickle": True, "tensor_meta": None}  # fmt: skip

            return _edit_json(data, change)
        return data

    return _rewrite(clean, tmp_path / "opaque.pt2", edit)


def _sample_inputs(clean, tmp_path, marker):
    def edit(rel, data):
        if rel == "data/sample_inputs/model.pt":
            buf = io.BytesIO()
            torch.save(_Payload(_touch(marker) + " or ((), {})"), buf)
            return buf.getvalue()
        return None if rel is None else data

    return _rewrite(clean, tmp_path / "sample_inputs.pt2", edit)


def _sympy_expr(clean, tmp_path, marker):
    def edit(rel, data):
        if rel == "models/model.json":
            text = data.decode()
            first = text.index('"expr_str": "') + len('"expr_str": "')
            end = text.index('"', first)
            sym = text[first:end]
            evil = _touch(marker).replace("'", "\\u0027") + " or " + sym
            return (text[:first] + evil + text[end:]).encode()
        return None if rel is None else data

    return _rewrite(clean, tmp_path / "sympy.pt2", edit)


def _guard(clean, tmp_path, marker):
    def edit(rel, data):
        if rel == "models/model.json":
            return _edit_json(
                data, lambda p: p.__setitem__("guards_code", [_touch(marker) + " is None"])
            )
        return None if rel is None else data

    return _rewrite(clean, tmp_path / "guard.pt2", edit)


def _os_target(clean, tmp_path, marker):
    def edit(rel, data):
        if rel == "models/model.json":

            def change(p):
                p["graph_module"]["graph"]["nodes"][0]["target"] = "torch.os.system"

            return _edit_json(data, change)
        return None if rel is None else data

    return _rewrite(clean, tmp_path / "target.pt2", edit)


def _compiled(clean, tmp_path, marker):
    def edit(rel, data):
        if rel is None:
            return {"data/aotinductor/model/model.so": b"\x7fELF"}
        return data

    return _rewrite(clean, tmp_path / "aoti.pt2", edit)


def _legacy(clean, tmp_path, marker):
    def edit(rel, data):
        return data if rel is not None else {}

    dst = _rewrite(clean, tmp_path / "legacy.pt2", edit)
    with zipfile.ZipFile(dst, "a") as z:
        z.writestr("version", "8.0")
    return dst


# (name, builder, phrase in the refusal, whether torch.export.load + .module() + a forward
# pass run the payload when trusted: the proof that the planted file is a real attack)
PLANTS = [
    ("use_pickle weight", _pickled_weight, "pickled tensor 'conv.weight'", True),
    ("opaque constant", _opaque_constant, "pickled tensor 'evil'", True),
    ("sample inputs", _sample_inputs, "pickled python objects (data/sample_inputs/model.pt)", True),
    ("sympy expression", _sympy_expr, "shape expression that is not arithmetic", True),
    ("guards code", _guard, "guard code that is not a size comparison", True),
    ("os.system target", _os_target, "'torch.os.system', which is not a torch operator", False),
    ("AOTInductor library", _compiled, "compiled code (data/aotinductor/", False),
    ("pre-2.8 format", _legacy, "pre-2.8 export format", False),
]


def test_the_clean_archive_passes(clean):
    assert unsafe_entries(clean.read_bytes()) == []
    t = load_teacher(str(clean))
    assert t.kind == "exported" and t.module(X).shape == (2, 5)


@pytest.mark.parametrize("name,build,phrase,runs", PLANTS, ids=[p[0] for p in PLANTS])
def test_planted_archive_is_refused_before_it_runs(clean, tmp_path, name, build, phrase, runs):
    marker = tmp_path / "ran"
    evil = build(clean, tmp_path, marker)
    with pytest.raises(ModelLoadError) as e:
        load_teacher(str(evil))
    assert phrase.lower() in str(e.value).lower(), str(e.value)
    assert "--trust-pickle" in str(e.value) and "\n" not in str(e.value)
    assert not marker.exists()
    if runs:  # the same file, loaded the way torch loads it, runs its payload
        try:
            program = torch.export.load(str(evil))
            program.module()(X)
        except Exception:
            pass
        assert marker.exists(), f"the planted {name} did not run: the test proves nothing"


def test_trust_pickle_loads_a_pickled_weight(clean, tmp_path):
    marker = tmp_path / "ran"
    t = load_teacher(str(_pickled_weight(clean, tmp_path, marker)), trust_pickle=True)
    assert t.kind == "exported" and marker.exists()


def test_os_system_is_reachable_from_torch():
    # why a node target of torch.os.system is dangerous: the deserializer's getattr chain from
    # the torch module reaches it
    assert torch.os.system is os.system
    assert not safe_target("torch.os.system")
    assert not safe_target("torch.ops.load_library")
    assert not safe_target("torch.ops.aten.__class__.__init__")
    assert safe_target("torch.ops.aten.conv2d.default")
    assert safe_target("torch.ops.aten._native_batch_norm_legit_no_training.default")
    assert safe_target("_operator.getitem") and safe_target("torch.sym_int")


def test_expression_and_guard_checks():
    assert safe_sympy("Symbol('s77', positive=True, integer=True)")
    assert safe_sympy("2*s0 + FloorDiv(s1, 2) - Max(1, s2)**2")
    assert not safe_sympy("__import__('os').system('true')")
    assert not safe_sympy("Symbol('s0').__class__")
    assert not safe_sympy("Symbol('x; import os')")
    assert safe_guard("L['x'].size()[0] >= 2 and L['x'].size()[0] <= 64")
    assert not safe_guard("__import__('os').system('true')")
    assert not safe_guard("L['x'].__class__")
    assert not safe_guard("L[open('f')]")
