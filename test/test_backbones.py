# Copyright 2026 reloc_ros contributors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""ResNet backbones: torchvision-identical state_dicts, strict weight loading, output shapes."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from reloc_ros.nets import BACKBONE_NAMES, IMAGENET_MEAN, IMAGENET_STD, Backbone, build_backbone

# Written independently from torchvision's ResNet description (He et al. 2016 +
# torchvision's module naming): blocks per stage and the block type.
LAYOUT = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
}
# torchvision's published parameter counts (fc with 1000 classes included).
TORCHVISION_PARAMS = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032}


def _bn(prefix: str, ch: int) -> list[tuple[str, tuple[int, ...]]]:
    return [(f"{prefix}.weight", (ch,)), (f"{prefix}.bias", (ch,)), (f"{prefix}.running_mean", (ch,)),
            (f"{prefix}.running_var", (ch,)), (f"{prefix}.num_batches_tracked", ())]


def torchvision_keys(name: str) -> list[tuple[str, tuple[int, ...]]]:
    """(key, shape) in torchvision's state_dict order."""
    kind, counts = LAYOUT[name]
    exp = 4 if kind == "bottleneck" else 1
    keys = [("conv1.weight", (64, 3, 7, 7))] + _bn("bn1", 64)
    in_ch = 64
    for stage, (planes, n) in enumerate(zip((64, 128, 256, 512), counts), start=1):
        for b in range(n):
            p = f"layer{stage}.{b}"
            stride = 2 if (b == 0 and stage > 1) else 1
            out = planes * exp
            if kind == "basic":
                keys += [(f"{p}.conv1.weight", (planes, in_ch, 3, 3))] + _bn(f"{p}.bn1", planes)
                keys += [(f"{p}.conv2.weight", (planes, planes, 3, 3))] + _bn(f"{p}.bn2", planes)
            else:
                keys += [(f"{p}.conv1.weight", (planes, in_ch, 1, 1))] + _bn(f"{p}.bn1", planes)
                keys += [(f"{p}.conv2.weight", (planes, planes, 3, 3))] + _bn(f"{p}.bn2", planes)
                keys += [(f"{p}.conv3.weight", (out, planes, 1, 1))] + _bn(f"{p}.bn3", out)
            if b == 0 and (stride != 1 or in_ch != out):
                keys += [(f"{p}.downsample.0.weight", (out, in_ch, 1, 1))] + _bn(f"{p}.downsample.1", out)
            in_ch = out
    keys += [("fc.weight", (1000, in_ch)), ("fc.bias", (1000,))]
    return keys


@pytest.fixture(scope="module")
def r18() -> Backbone:
    torch.manual_seed(0)
    return build_backbone("resnet18").eval()


@pytest.fixture(scope="module")
def r18_file(r18: Backbone, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("w") / "resnet18.pth"
    torch.save(r18.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def scratch() -> Backbone:
    """Return a second resnet18 that loading tests overwrite (every load replaces all its weights)."""
    torch.manual_seed(99)
    return build_backbone("resnet18")


def _shapes(model: torch.nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in model.state_dict().items()]


def test_resnet18_state_dict_is_torchvision_s(r18):
    assert _shapes(r18) == torchvision_keys("resnet18")
    sd = r18.state_dict()
    assert len(sd) == 122
    # A few keys written out literally, as they appear in resnet18-f37072fd.pth.
    assert sd["layer3.0.downsample.0.weight"].shape == (256, 128, 1, 1)
    assert sd["layer3.0.downsample.1.running_var"].shape == (256,)
    assert sd["layer1.1.conv2.weight"].shape == (64, 64, 3, 3)
    assert sd["fc.weight"].shape == (1000, 512)
    assert "layer1.0.downsample.0.weight" not in sd  # layer1 keeps 64 channels at stride 1
    assert sd["bn1.num_batches_tracked"].dtype == torch.long


@pytest.mark.parametrize("name, n_keys", [("resnet34", 218), ("resnet50", 320)])
def test_resnet34_50_state_dicts_are_torchvision_s(name, n_keys):
    model = build_backbone(name)
    assert _shapes(model) == torchvision_keys(name)
    assert len(model.state_dict()) == n_keys
    assert sum(p.numel() for p in model.parameters()) == TORCHVISION_PARAMS[name]
    sd = model.state_dict()
    if name == "resnet50":
        assert sd["layer4.2.conv3.weight"].shape == (2048, 512, 1, 1)
        assert sd["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1)
        # v1.5: the stride sits on the 3x3 conv of the first bottleneck of a stage.
        assert model.layer2[0].conv2.stride == (2, 2) and model.layer2[0].conv1.stride == (1, 1)
    else:
        assert sd["layer3.5.bn2.weight"].shape == (256,)


def test_resnet18_parameter_count(r18):
    assert sum(p.numel() for p in r18.parameters()) == TORCHVISION_PARAMS["resnet18"]


def test_initialisation_matches_torchvision_scheme():
    torch.manual_seed(1)
    model = build_backbone("resnet18")
    w = model.layer4[1].conv2.weight  # fan_out = 512 * 3 * 3
    assert abs(w.std().item() - math.sqrt(2.0 / (512 * 9))) < 0.02 * math.sqrt(2.0 / (512 * 9))
    assert abs(w.mean().item()) < 1e-3
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)


def test_output_shapes_and_channels(r18):
    x = torch.randn(2, 3, 96, 128)
    r50 = build_backbone("resnet50").eval()
    for model, ch, xb in ((r18, 512, x), (r50, 2048, x[:1])):
        assert model.out_channels == ch
        with torch.no_grad():
            pooled = model(xb)
            levels = model.forward_levels(xb)
        assert pooled.shape == (xb.shape[0], ch)
        assert [tuple(t.shape[1:]) for t in levels] == [
            (c, 96 // s, 128 // s) for c, s in zip(model.level_channels, model.level_strides)]
        assert levels[-1].shape[1:] == (ch, 3, 4)
        assert torch.allclose(pooled, levels[-1].mean(dim=(2, 3)), atol=1e-6)
    with torch.no_grad():
        feats = r18.forward_features(x)
        last_level = r18.forward_levels(x)[-1]
    assert feats.shape == (2, 512, 3, 4)
    assert torch.allclose(feats, last_level, atol=1e-6)


def test_classifier_is_unused_and_frozen(r18):
    assert not any(p.requires_grad for p in r18.fc.parameters())
    assert all(p.requires_grad for n, p in r18.named_parameters() if not n.startswith("fc."))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = r18(x)
        saved = r18.fc.weight.clone()
        r18.fc.weight.fill_(123.0)
        after = r18(x)
        assert r18.classify(x).shape == (1, 1000)
        r18.fc.weight.copy_(saved)
    assert torch.equal(before, after)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="resnet18, resnet34, resnet50"):
        build_backbone("vgg16")
    assert BACKBONE_NAMES == ("resnet18", "resnet34", "resnet50")


def test_imagenet_constants():
    assert IMAGENET_MEAN == (0.485, 0.456, 0.406)
    assert IMAGENET_STD == (0.229, 0.224, 0.225)


def test_round_trip_loads_strictly_and_reproduces_outputs(r18, r18_file):
    torch.manual_seed(123)  # a different random init, so equality means the weights were loaded
    fresh = build_backbone("resnet18", weights=r18_file).eval()
    x = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        assert torch.equal(fresh(x), r18(x))
        assert torch.equal(fresh.forward_features(x), r18.forward_features(x))
    for k, v in r18.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v), k


def test_wrapped_and_dataparallel_checkpoints_load(r18, scratch, tmp_path):
    sd = r18.state_dict()
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"state_dict": sd, "epoch": 3}, wrapped)
    prefixed = tmp_path / "prefixed.pth"
    torch.save({f"module.{k}": v for k, v in sd.items()}, prefixed)
    for path in (wrapped, prefixed):
        with torch.no_grad():
            scratch.layer4[1].conv2.weight.zero_()
        scratch.load_weights(path)
        assert torch.equal(scratch.layer4[1].conv2.weight, r18.layer4[1].conv2.weight), path


def test_old_checkpoint_without_num_batches_tracked_loads(r18, scratch, tmp_path):
    # torchvision's first ImageNet files predate BatchNorm's num_batches_tracked buffer.
    path = tmp_path / "old.pth"
    torch.save({k: v for k, v in r18.state_dict().items() if not k.endswith("num_batches_tracked")}, path)
    with torch.no_grad():
        scratch.bn1.running_var.fill_(7.0)
    scratch.load_weights(path)
    assert torch.equal(scratch.bn1.running_var, r18.bn1.running_var)


def test_resnet18_file_into_resnet34_names_missing_keys(r18_file):
    with pytest.raises(ValueError) as err:
        build_backbone("resnet34", weights=r18_file)
    msg = str(err.value)
    assert str(r18_file) in msg and "missing keys" in msg and "layer1.2.conv1.weight" in msg
    assert "looks like a resnet18" in msg


def test_resnet18_file_into_resnet50_names_mis_shaped_keys(r18_file):
    with pytest.raises(ValueError, match=r"mis-shaped keys.*layer1\.0\.conv1\.weight \(64, 64, 3, 3\)"):
        build_backbone("resnet50", weights=r18_file)


def test_mis_shaped_tensor_names_the_key(r18, scratch, tmp_path):
    sd = dict(r18.state_dict())
    sd["layer2.1.bn1.running_mean"] = torch.zeros(64)
    path = tmp_path / "bad_shape.pth"
    torch.save(sd, path)
    with torch.no_grad():
        scratch.layer1[0].conv1.weight.fill_(0.5)
    snapshot = {k: v.clone() for k, v in scratch.state_dict().items()}
    with pytest.raises(ValueError, match=r"layer2\.1\.bn1\.running_mean \(64,\) vs \(128,\)"):
        scratch.load_weights(path)
    # Nothing was partially loaded.
    assert all(torch.equal(v, snapshot[k]) for k, v in scratch.state_dict().items())


def test_unexpected_key_is_named(r18, tmp_path):
    sd = dict(r18.state_dict())
    sd["head.weight"] = torch.zeros(3)
    path = tmp_path / "extra.pth"
    torch.save(sd, path)
    with pytest.raises(ValueError, match="unexpected keys: head.weight"):
        build_backbone("resnet18", weights=path)


@pytest.mark.parametrize("content", [
    b"this is not a torch file",
    b"",
    b"PK\x03\x04 truncated zip",
])
def test_garbage_file_names_the_file(scratch, tmp_path, content):
    path = tmp_path / "garbage.pth"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="garbage.pth"):
        scratch.load_weights(path)


def test_truncated_real_file_names_the_file(r18_file, scratch, tmp_path):
    path = tmp_path / "truncated.pth"
    path.write_bytes(r18_file.read_bytes()[: 100_000])
    with pytest.raises(ValueError, match="truncated.pth"):
        scratch.load_weights(path)


@pytest.mark.parametrize("obj, what", [
    (torch.zeros(3), "Tensor"),
    ([torch.zeros(3)], "list"),
    ({"conv1.weight": 3.0}, "non-tensor"),
    ({}, "no entries"),
    ({"a": torch.zeros(1), "b": torch.ones(2)}, "missing keys"),
])
def test_non_state_dict_objects_are_rejected(scratch, tmp_path, obj, what):
    path = tmp_path / "odd.pth"
    torch.save(obj, path)
    with pytest.raises(ValueError, match=what) as err:
        scratch.load_weights(path)
    assert "odd.pth" in str(err.value)


def test_pickled_module_is_refused_without_running_code(scratch, tmp_path):
    # weights_only=True: a whole pickled nn.Module is not loaded (it could run code).
    path = tmp_path / "module.pth"
    torch.save(torch.nn.Linear(2, 2), path)
    with pytest.raises(ValueError, match="module.pth"):
        scratch.load_weights(path)


def test_missing_file_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="nope.pth.*do not exist"):
        build_backbone("resnet18", weights=tmp_path / "nope.pth")


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_torchscript_keeps_all_entry_points(r18):
    # Exported models may be TorchScript: forward and forward_levels must both survive scripting.
    scripted = torch.jit.script(r18)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        assert torch.allclose(scripted(x), r18(x), atol=1e-5)
        assert [t.shape for t in scripted.forward_levels(x)] == [t.shape for t in r18.forward_levels(x)]
