import os
import pickle
import warnings

import pytest
import timm
import torch

from edgekd.errors import ModelLoadError
from edgekd.models import check_teacher, load_teacher, save_checkpoint

X = torch.randn(2, 3, 32, 32)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return timm.create_model("resnet10t", num_classes=10).eval()


def _same(a, b):
    with torch.no_grad():
        return torch.allclose(a(X), b(X), atol=1e-5)


def test_torchscript(tmp_path, net):
    p = tmp_path / "m.ts"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.trace(net, X).save(str(p))
    t = load_teacher(str(p))
    assert t.kind == "torchscript" and _same(t.module, net)


def test_torch_export_program(tmp_path, net):
    p = tmp_path / "m.pt2"
    ep = torch.export.export(net, (X,), dynamic_shapes={"x": {0: torch.export.Dim("b", max=512)}})
    torch.export.save(ep, str(p))
    t = load_teacher(str(p))
    assert t.kind == "exported" and t.program is not None and _same(t.module, net)


def test_state_dict_needs_arch(tmp_path, net):
    p = tmp_path / "sd.pt"
    torch.save(net.state_dict(), p)
    with pytest.raises(ModelLoadError, match="--arch"):
        load_teacher(str(p))
    t = load_teacher(str(p), arch="resnet10t")
    assert t.kind == "state_dict" and t.num_classes == 10 and _same(t.module, net)


def test_state_dict_with_wrong_arch(tmp_path, net):
    p = tmp_path / "sd.pt"
    torch.save(net.state_dict(), p)
    with pytest.raises(ModelLoadError, match="does not fit timm 'resnet18'"):
        load_teacher(str(p), arch="resnet18")


def test_edgekd_checkpoint_carries_arch_and_shape(tmp_path, net):
    p = save_checkpoint(tmp_path / "ck.pt", net, "resnet10t", 10, (3, 32, 32))
    t = load_teacher(str(p))
    assert (t.kind, t.arch, t.input_shape) == ("checkpoint", "resnet10t", (3, 32, 32))
    assert _same(t.module, net)


def test_timm_name():
    t = load_teacher("timm:resnet10t", num_classes=7)
    assert t.kind == "timm" and t.module(X).shape == (2, 7)


def test_unknown_timm_name_suggests():
    with pytest.raises(ModelLoadError) as e:
        load_teacher("timm:resnet181")
    assert "unknown timm model" in str(e.value) and "resnet18" in str(e.value)


class Evil:
    """Unpickling this calls os.system-like code: it would create a file."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_malicious_pickle_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    p = tmp_path / "evil.pt"
    with open(p, "wb") as f:
        torch.save({"state_dict": Evil(str(marker))}, f)
    assert not marker.exists()
    with pytest.raises(ModelLoadError, match="--trust-pickle"):
        load_teacher(str(p))
    assert not marker.exists()


def test_full_module_pickle_needs_flag(tmp_path, net):
    p = tmp_path / "full.pt"
    torch.save(net, p)
    with pytest.raises(ModelLoadError, match="pickled Python objects"):
        load_teacher(str(p))
    t = load_teacher(str(p), trust_pickle=True)
    assert t.kind == "pickle" and _same(t.module, net)


def test_missing_empty_corrupt_truncated(tmp_path, net):
    with pytest.raises(ModelLoadError, match="not found"):
        load_teacher(str(tmp_path / "nope.pt"))
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="empty"):
        load_teacher(str(tmp_path / "empty.pt"))
    (tmp_path / "junk.pt").write_bytes(os.urandom(4096))
    with pytest.raises(ModelLoadError, match="corrupt or truncated"):
        load_teacher(str(tmp_path / "junk.pt"))
    good = save_checkpoint(tmp_path / "ck.pt", net, "resnet10t", 10)
    data = good.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="corrupt or truncated"):
        load_teacher(str(tmp_path / "trunc.pt"))


def test_plain_pickle_of_a_list_is_not_a_model(tmp_path):
    p = tmp_path / "list.pt"
    torch.save([1, 2, 3], p)
    with pytest.raises(ModelLoadError, match="neither a model nor a state dict"):
        load_teacher(str(p))


def test_check_teacher_class_and_shape_mismatch(net):
    t = load_teacher("timm:resnet10t", num_classes=10)
    check_teacher(t, (3, 32, 32), 10)
    with pytest.raises(Exception, match="output classes do not match"):
        check_teacher(t, (3, 32, 32), 5)
    with pytest.raises(Exception, match="cannot run on input shape"):
        check_teacher(t, (1, 32, 32), 10)


def test_pickle_module_is_not_imported_for_weights_only(tmp_path):
    # a pickle naming an unknown module must fail safely, not import anything
    p = tmp_path / "x.pt"
    payload = pickle.dumps(Evil(str(tmp_path / "m")))
    p.write_bytes(payload)
    with pytest.raises(ModelLoadError):
        load_teacher(str(p))
    assert not (tmp_path / "m").exists()


def test_a_vit_state_dict_trained_at_a_small_size_loads_with_its_arguments(tmp_path):
    """issue 25 item 2: --arch is built at the input size (img_size) with --arch-args, the
    edgekd checkpoint keeps them, and a mismatch names the real cause."""
    arch = "deit_tiny_patch16_224"
    torch.manual_seed(0)
    vit = timm.create_model(arch, num_classes=10, img_size=32, patch_size=8).eval()
    sd_path = tmp_path / "vit_sd.pt"
    torch.save(vit.state_dict(), sd_path)
    x = torch.randn(2, 3, 32, 32)

    t = load_teacher(str(sd_path), arch=arch, arch_args={"patch_size": 8}, input_shape=(3, 32, 32))
    with torch.no_grad():
        assert torch.allclose(t.module(x), vit(x), atol=1e-5)
    assert t.meta["arch_args"] == {"patch_size": 8}

    with pytest.raises(ModelLoadError, match="another input size or patch size.*--arch-args"):
        load_teacher(str(sd_path), arch=arch)  # timm's 224/16 defaults: pos_embed mismatch

    ck = save_checkpoint(tmp_path / "vit.pt", vit, arch, 10, (3, 32, 32), {"patch_size": 8})
    again = load_teacher(str(ck))  # no flags: the checkpoint says how to build it
    with torch.no_grad():
        assert torch.allclose(again.module(x), vit(x), atol=1e-5)


def test_arch_args_parse_and_bad_ones_are_one_line():
    from edgekd.config import CompressConfig, build_config, parse_arch_args
    from edgekd.errors import ConfigError

    assert parse_arch_args("patch_size=8, drop_rate=0.1,global_pool=avg,class_token=false") == {
        "patch_size": 8,
        "drop_rate": 0.1,
        "global_pool": "avg",
        "class_token": False,
    }
    with pytest.raises(ConfigError, match="--arch-args.*KEY=VALUE"):
        build_config(CompressConfig, {"teacher": "t.pt", "arch_args": "patch_size"})


def test_stem_pool_false_keeps_the_stem_map_and_rebuilds_from_the_checkpoint(tmp_path):
    """edgekd's own arch_args key: a timm ResNet without its stem max-pool. From 32x32 the
    stride-2 stem conv leaves 16x16 and layer1 keeps it (stride 1), where timm's pool halves it
    to 8x8; each later stage halves again, so layer4 is 2x2, not 1x1."""
    from edgekd.models.loading import create_timm

    torch.manual_seed(0)
    plain = create_timm("resnet18", 10)
    nopool = create_timm("resnet18", 10, stem_pool=False).eval()
    assert isinstance(plain.maxpool, torch.nn.MaxPool2d)
    assert isinstance(nopool.maxpool, torch.nn.Identity)
    shapes = {}
    hooks = [getattr(nopool, n).register_forward_hook(
        lambda _m, _i, out, n=n: shapes.__setitem__(n, tuple(out.shape[-2:])))
        for n in ("layer1", "layer2", "layer3", "layer4")]  # fmt: skip
    with torch.no_grad():
        nopool(X)
    for h in hooks:
        h.remove()
    assert shapes == {"layer1": (16, 16), "layer2": (8, 8), "layer3": (4, 4), "layer4": (2, 2)}
    # the feature losses read the reductions from feature_info: 32 / map size
    red = {f["module"]: f["reduction"] for f in nopool.feature_info if f["module"] in shapes}
    assert red == {n: 32 // s[0] for n, s in shapes.items()}

    ck = save_checkpoint(tmp_path / "r18.pt", nopool, "resnet18", 10, (3, 32, 32),
                         {"stem_pool": False})  # fmt: skip
    again = load_teacher(str(ck))
    assert isinstance(again.module.maxpool, torch.nn.Identity)
    assert again.meta["arch_args"] == {"stem_pool": False}
    assert _same(again.module, nopool)


def test_stem_pool_is_refused_where_there_is_no_resnet_pool():
    from edgekd.models.loading import create_timm

    with pytest.raises(ModelLoadError, match="timm ResNets with a max-pool stem only"):
        create_timm("mobilenetv3_small_050", 10, stem_pool=False)
    with pytest.raises(ModelLoadError, match="stem_pool takes true or false"):
        create_timm("resnet18", 10, stem_pool="no")
