"""Inspect a torch.export `.pt2` archive before `torch.export.load` runs anything from it.

`torch.export.load` (torch 2.14, `torch/export/pt2_archive/_package.py` and
`torch/_export/serde/serialize.py`) runs code from the archive in six ways:

1. a weight or tensor constant whose payload config says `use_pickle: true` is read with
   `torch.load(..., weights_only=False)` (`_load_state_dict`, `_load_constants`);
2. a constant stored as `opaque_obj_*` goes through `pickle.loads`, one stored as
   `custom_obj_*` through the TorchScript object unpickler (`_load_constants`);
3. sample inputs and legacy `weights/<model>.pt` / `constants/<model>.pt` payloads go through
   `deserialize_torch_artifact`, which falls back to `weights_only=False` when the safe load
   fails; the pre-2.8 format (a top-level `version` file) does the same for its state dict;
4. a graph node's `target` is resolved by `getattr` from `torch`, `math` or `operator`
   (`deserialize_operator`): `torch.os.system` resolves, and the node calls it when it runs;
5. symbolic-shape expressions (`expr_str`) go through `sympy.sympify`, which `eval`s them;
6. `guards_code` strings are pasted into Python source and `exec`'d when `.module()` is
   called (`torch/export/_unlift.py`, `_convert_guards_code_to_fn`).

AOTInductor, ExecuTorch and MTIA payloads are compiled code. `unsafe_entries` reports each of
these found in an archive, reading only JSON and running `torch.load(weights_only=True)`, so
the caller can refuse the file before `torch.export.load` sees it. What an ordinary
`torch.export.save` of a model writes (raw tensors, `torch.ops.*` targets, `Symbol('s0',
positive=True, integer=True)` expressions, no guards) passes.
"""

from __future__ import annotations

import io
import json
import math
import operator
import re
import tokenize
import zipfile
from collections.abc import Iterator

import torch

_COMPILED_DIRS = ("data/aotinductor/", "data/executorch/", "data/mtia")
_PAYLOAD_CONFIG = re.compile(r"^data/(weights|constants)/[^/]+\.json$")
_PICKLE_PAYLOADS = re.compile(r"^data/(weights|constants|sample_inputs)/[^/]+\.pt$")

# operator.* targets that the serializer writes for symbolic arithmetic (serialize.py _SYM_OPS)
_OPERATOR_OK = {
    "add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "neg", "pos", "abs", "eq", "ne",
    "lt", "le", "gt", "ge", "and_", "or_", "not_", "getitem",
}  # fmt: skip

# names a sympy expression written by the serializer may use (serialize.py sympy_functions,
# plus sympy's own constructors and assumptions)
_SYMPY_NAMES = {
    "Symbol", "Integer", "Float", "Rational", "Add", "Mul", "Pow", "Max", "Min", "Mod", "Abs",
    "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "And", "Or", "Not", "floor", "ceiling", "oo", "true",
    "false", "True", "False", "positive", "negative", "nonnegative", "nonpositive", "integer",
    "real", "finite", "FloorDiv", "ModularIndexing", "Where", "PythonMod", "CleanDiv",
    "CeilToInt", "FloorToInt", "CeilDiv", "LShift", "RShift", "IsNonOverlappingAndDenseIndicator",
    "TruncToFloat", "TruncToInt", "RoundToInt", "RoundDecimal", "ToFloat", "FloatPow",
    "PowByNatural", "FloatTrueDiv", "IntTrueDiv", "BitwiseFn_bitwise_and",
    "BitwiseFn_bitwise_or", "Identity", "OpaqueUnaryFn_sqrt", "OpaqueUnaryFn_exp",
    "OpaqueUnaryFn_log",
}  # fmt: skip
_SYMBOL_NAME = re.compile(r"^[a-z]{1,4}\d+$")  # s0, u3, s77, zuf0, ...

# guards_code: `L['x'].size()[0] >= 2`-style comparisons of input sizes
_GUARD_NAMES = {"L", "and", "or", "not", "True", "False", "inf", "math"} | _SYMPY_NAMES
_GUARD_ATTRS = {"size", "stride", "storage_offset", "dim", "numel", "floor", "ceil", "trunc"}
_GUARD_STRING = re.compile(r"""^(['"])[A-Za-z_][A-Za-z0-9_]*\1$""")


def unsafe_entries(data: bytes) -> list[str]:
    """What in this `.pt2` archive would run code under `torch.export.load`, one phrase each.

    An empty list means the archive holds only raw tensors, known operators and plain shape
    expressions. The archive is read from `data` (the caller loads the same bytes afterwards,
    so nothing can change in between).
    """
    found: list[str] = []
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for info in z.infolist():
            name = info.filename
            if name == "version" or name.endswith("/serialized_exported_program.json"):
                found.append(
                    f"the pre-2.8 export format ({name}), whose loader unpickles with "
                    "weights_only=False"
                )
                continue
            rel = name.split("/", 1)[1] if "/" in name else name
            if rel.startswith(_COMPILED_DIRS):
                found.append(f"compiled code ({rel})")
            elif _PAYLOAD_CONFIG.match(rel):
                found.extend(_payload_findings(rel, z.read(info)))
            elif _PICKLE_PAYLOADS.match(rel):
                if not _weights_only_ok(z.read(info)):
                    found.append(f"pickled Python objects ({rel})")
            elif rel.startswith("models/") and rel.endswith(".json"):
                found.extend(_program_findings(rel, z.read(info)))
    return list(dict.fromkeys(found))


def _payload_findings(rel: str, raw: bytes) -> Iterator[str]:
    try:
        config = json.loads(raw).get("config", {})
    except (ValueError, AttributeError):
        yield f"an unreadable payload config ({rel})"
        return
    if not isinstance(config, dict):
        yield f"an unreadable payload config ({rel})"
        return
    for fqn, meta in config.items():
        if not isinstance(meta, dict):
            yield f"an unreadable payload entry {fqn!r} ({rel})"
            continue
        path_name = str(meta.get("path_name", ""))
        if meta.get("use_pickle"):
            yield f"a pickled tensor {fqn!r} ({rel}: use_pickle)"
        elif path_name.startswith("opaque_obj_"):
            yield f"a pickled opaque object {fqn!r} ({rel})"
        elif path_name.startswith("custom_obj_"):
            yield f"a TorchScript object {fqn!r} ({rel})"


def _weights_only_ok(raw: bytes) -> bool:
    try:
        torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception:
        return False
    return True


def _program_findings(rel: str, raw: bytes) -> Iterator[str]:
    try:
        program = json.loads(raw)
    except ValueError:
        yield f"an unreadable program ({rel})"
        return
    for guard in (program.get("guards_code") or []) if isinstance(program, dict) else []:
        if not (isinstance(guard, str) and safe_guard(guard)):
            yield f"guard code that is not a size comparison ({rel}: {str(guard)[:60]!r})"
    for key, value in _walk(program):
        if key == "target" and isinstance(value, str) and not safe_target(value):
            yield f"a graph call to {value[:80]!r}, which is not a torch operator ({rel})"
        elif key == "expr_str" and isinstance(value, str) and not safe_sympy(value):
            yield f"a shape expression that is not arithmetic ({rel}: {value[:60]!r})"


def _walk(obj: object) -> Iterator[tuple[str, object]]:
    stack = [obj]
    while stack:
        cur = stack.pop()
        if isinstance(cur, dict):
            for k, v in cur.items():
                yield k, v
                stack.append(v)
        elif isinstance(cur, list):
            stack.extend(cur)


def safe_target(target: str) -> bool:
    """Whether a serialized node target resolves to a torch operator or plain arithmetic."""
    parts = target.split(".")
    if any(not p.isidentifier() or p.startswith("__") for p in parts):
        return False
    if parts[0] == "torch" and len(parts) >= 4 and parts[1] == "ops":
        obj: object = torch
        for p in parts[1:]:
            obj = getattr(obj, p, None)
            if obj is None:
                return False
        return isinstance(obj, (torch._ops.OpOverload, torch._ops.HigherOrderOperator))
    if parts[0] == "torch" and len(parts) == 2 and re.fullmatch(r"_?sym_[a-z_]+", parts[1]):
        return callable(getattr(torch, parts[1], None))
    if parts[0] == "_operator" and len(parts) == 2:
        return parts[1] in _OPERATOR_OK and hasattr(operator, parts[1])
    if parts[0] == "math" and len(parts) == 2:
        return callable(getattr(math, parts[1], None))
    return False


def _tokens(text: str) -> list[tokenize.TokenInfo] | None:
    try:
        return [
            t
            for t in tokenize.generate_tokens(io.StringIO(text).readline)
            if t.type not in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER, tokenize.INDENT)
        ]
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return None


def safe_sympy(expr: str) -> bool:
    """Whether `sympy.sympify(expr)` can only build arithmetic on named symbols."""
    toks = _tokens(expr)
    if toks is None:
        return False
    for t in toks:
        if t.type == tokenize.NAME and t.string not in _SYMPY_NAMES:
            if not _SYMBOL_NAME.match(t.string):
                return False
        elif t.type == tokenize.STRING:
            if not re.fullmatch(r"""(['"])[a-z]{1,4}\d+\1""", t.string):
                return False
        elif t.type == tokenize.OP and t.string in (".", "[", "]", "{", "}", ":", ";", "@", ":="):
            return False
        elif t.type not in (tokenize.NAME, tokenize.STRING, tokenize.OP, tokenize.NUMBER):
            return False
    return True


def safe_guard(guard: str) -> bool:
    """Whether a guards_code line only compares input sizes (`L['x'].size()[0] >= 2`)."""
    toks = _tokens(guard)
    if toks is None:
        return False
    for i, t in enumerate(toks):
        prev = toks[i - 1].string if i else ""
        if t.type == tokenize.NAME:
            if prev == ".":
                if t.string not in _GUARD_ATTRS:
                    return False
            elif t.string not in _GUARD_NAMES and not _SYMBOL_NAME.match(t.string):
                return False
        elif t.type == tokenize.STRING:
            if not _GUARD_STRING.match(t.string):
                return False
        elif t.type == tokenize.OP and t.string in ("{", "}", ":", ";", "@", "=", ":="):
            return False
        elif t.type not in (tokenize.NAME, tokenize.STRING, tokenize.OP, tokenize.NUMBER):
            return False
    return True
