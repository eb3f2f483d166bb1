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

"""The trainer node's parameters without ROS: made from the train options, checked as the CLI checks them.

Checked against the YAML file, the README and the launch file; trainer_options
and its errors; the epoch line the node reads.
"""

from __future__ import annotations

import array
from dataclasses import replace
from pathlib import Path
import re

import pytest
import yaml

from reloc_ros.cli import build_parser
from reloc_ros.runtime import node_params as P
from reloc_ros.training import node_params as T
from reloc_ros.training import options as TO

ROOT = Path(__file__).resolve().parents[1]


def _yaml_params(name: str) -> dict:
    data = yaml.safe_load((ROOT / "config" / name).read_text())
    assert list(data) == ["/**"], "parameter files apply to the node whatever its name/namespace"
    return data["/**"]["ros__parameters"]   # the trainer's parameters have no dotted (nested) names


def _same(a, b) -> bool:
    """Equal and of the same ROS type (1 != 1.0 != True for typed ROS parameters)."""
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return list(a) == list(b) and all(type(x) is type(y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _cli_train(*argv: str) -> dict:
    """Return the option values ``reloc-ros train ARGV`` parses to (argparse's, as a plain dict)."""
    args = vars(build_parser().parse_args(["train", *argv]))
    for key in ("func", "train_parser", "command", "verbose", "quiet"):
        args.pop(key)
    return args


# --------------------------------------------------------------------------
# Specs, YAML file, README, launch file
# --------------------------------------------------------------------------

def test_specs_are_unique_described_and_valid():
    specs = T.TRAINER_PARAMS
    names = [s.name for s in specs]
    assert len(names) == len(set(names))
    for s in specs:
        assert s.description.strip() and s.kind in P.KINDS and s.read_only
        assert re.fullmatch(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*", s.name), s.name
        P.check_value(s, list(s.default) if isinstance(s.default, tuple) else s.default)


def test_train_yaml_lists_every_parameter_with_its_default():
    text = (ROOT / "config" / "train.yaml").read_text()
    values = _yaml_params("train.yaml")
    for spec in T.TRAINER_PARAMS:
        if spec.default == ():
            # rcl's YAML parser cannot type an empty list: documented as a comment instead.
            assert spec.name not in values
            assert re.search(rf"^\s*# {re.escape(spec.name)}:", text, re.M), spec.name
        else:
            assert _same(values[spec.name], spec.default), spec.name
    assert set(values) <= {s.name for s in T.TRAINER_PARAMS}


def test_trainer_defaults_agree_with_the_trainer_and_cli():
    from reloc_ros.data.bag import BagSource
    from reloc_ros.mapping.build import MapConfig
    from reloc_ros.training.config import MODELS, TrainConfig

    d, by = TrainConfig(), P.spec_by_name(T.TRAINER_PARAMS)
    assert by["model"].choices == tuple(MODELS)
    assert by["model"].default == d.model and (by["backbone"].default or None) == d.backbone
    assert by["backbone"].choices == ("", "resnet18", "resnet34", "resnet50")
    assert by["epochs"].default == d.epochs and by["batch_size"].default == d.batch_size
    assert tuple(by["input_size"].default) == tuple(d.input_size)
    assert by["map_frame"].default == BagSource().map_frame and by["feature"].default == MapConfig().feature
    cli = _cli_train()
    assert (by["epochs"].default, by["device"].default, by["feature_map"].default) == \
        (cli["epochs"], cli["device"], cli["map"])


def test_config_readme_documents_every_parameter():
    specs = T.TRAINER_PARAMS
    readme = (ROOT / "config" / "README.md").read_text()
    for s in specs:
        assert f"| `{s.name}` |" in readme, s.name
    # The table is exactly the specs' (regenerate it with params_markdown when a spec changes).
    assert P.params_markdown(specs) in readme


def test_train_launch_sets_only_trainer_parameters():
    source = (ROOT / "launch" / "train.launch.py").read_text()
    names = set(re.findall(r"overrides\['([a-z_.]+)'\]", source))
    names |= {param for _, param in re.findall(r"\('([a-z_]+)', '([a-z_.]+)'\)", source)}
    assert {"bags", "output", "image_topic"} <= names
    assert names <= {s.name for s in T.TRAINER_PARAMS}, names - {s.name for s in T.TRAINER_PARAMS}


def test_check_value_of_the_trainer_parameters():
    tp = P.spec_by_name(T.TRAINER_PARAMS)
    assert P.check_value(tp["input_size"], array.array("q", [64, 48])) == [64, 48]  # as rclpy hands it back
    with pytest.raises(ValueError, match="list of integers"):
        P.check_value(tp["input_size"], [64.0, 48.0])
    with pytest.raises(ValueError, match="list of strings"):
        P.check_value(tp["bags"], "a_bag")


# --------------------------------------------------------------------------
# One declaration: the node's parameters are train options
# --------------------------------------------------------------------------

def test_every_parameter_is_a_train_option_with_its_default_and_choices():
    by_param = T.param_options()
    assert [s.name for s in T.TRAINER_PARAMS] == [o.param.name for o in TO.TRAIN_OPTIONS if o.param is not None]
    cli = _cli_train()
    for spec in T.TRAINER_PARAMS:
        option = by_param[spec.name]
        assert option.dest in cli, spec.name   # a real option of `reloc-ros train`
        default = cli[option.dest]
        if isinstance(default, (list, tuple)):
            assert list(spec.default) == list(default), spec.name
        elif default is None or isinstance(default, Path):
            assert spec.default == "", spec.name   # '' stands for the option's default
        else:
            assert _same(spec.default, default), spec.name
        if option.choices is not None and spec.name != "device":
            assert set(spec.choices) - {""} == set(option.choices), spec.name


def test_a_changed_default_changes_the_cli_and_the_node_alike():
    import argparse

    from reloc_ros.cli.common import add_options
    from reloc_ros.training.config import TrainConfig

    options = tuple(replace(o, default=7) if o.dest == "epochs" else
                    replace(o, default="orb") if o.dest == "feature" else o for o in TO.TRAIN_OPTIONS)
    parser = argparse.ArgumentParser()
    add_options(parser, options)
    args = parser.parse_args(["a_bag"])
    specs = P.spec_by_name(T.param_specs(options))
    assert args.epochs == 7 and specs["epochs"].default == 7
    assert args.feature == "orb" and specs["feature"].default == "orb"
    # ... and the real declaration is what both use.
    assert _cli_train()["epochs"] == P.spec_by_name(T.TRAINER_PARAMS)["epochs"].default == TrainConfig().epochs


def test_the_node_and_the_cli_build_the_same_run(tmp_path):
    out = tmp_path / "m.pt"
    o = T.trainer_options({"bags": ["a_bag"], "output": str(out), "model": "camnet", "epochs": 4,
                           "input_size": [64, 48], "depth_topic": "/depth", "feature": "orb"})
    cli = _cli_train("a_bag", "--out", str(out), "--model", "camnet", "--epochs", "4", "--input-size", "64x48",
                     "--depth-topic", "/depth", "--feature", "orb")
    assert o.config == TO.train_config_from_options(cli)
    assert o.source == TO.bag_source_from_options(cli)
    assert o.map_config == TO.map_config_from_options(cli)
    assert (list(o.bags), o.out, o.cache_dir, o.device) == (cli["bags"], cli["out"], cli["cache_dir"], cli["device"])


def test_param_spec_needs_a_parameter_and_a_representable_default():
    by_dest = TO.option_by_dest()
    with pytest.raises(ValueError, match="'lr' is not a trainer node parameter"):
        T.param_spec(by_dest["lr"])
    with pytest.raises(ValueError, match="'beta': a float parameter needs a default"):
        T.param_spec(replace(by_dest["beta"], param=TO.NodeParam("beta", "Rotation weight.")))
    spec = T.param_spec(replace(by_dest["head"], param=TO.NodeParam("head", "Head.")))
    assert (spec.default, spec.choices, spec.kind, spec.read_only) == ("", ("", "fc", "lstm"), "str", True)


# --------------------------------------------------------------------------
# trainer_options
# --------------------------------------------------------------------------

def test_trainer_options_required_and_defaults(tmp_path):
    with pytest.raises(ValueError, match=r"'bags' is empty"):
        T.trainer_options({"output": str(tmp_path / "m.pt")})
    with pytest.raises(ValueError, match=r"'output' is empty"):
        T.trainer_options({"bags": ["a_bag"]})
    o = T.trainer_options({"bags": ["a_bag", "b_bag"], "output": str(tmp_path / "m.pt")})
    assert o.bags == (Path("a_bag"), Path("b_bag")) and o.out == tmp_path / "m.pt"
    assert (o.resume, o.device, o.onnx) == (False, "auto", False)
    assert o.cache_dir == Path.home() / ".cache" / "reloc_ros"
    assert o.source.image_topic is None and o.source.camera_frame is None and o.source.pose_topic is None
    assert o.source.map_frame == "map"
    from reloc_ros.training.config import TrainConfig
    assert o.config == TrainConfig()
    from reloc_ros.mapping.build import MapConfig
    assert o.map_config == MapConfig()  # the feature map is built after training by default
    base = {"bags": ["a_bag"], "output": str(tmp_path / "m.pt")}
    assert T.trainer_options({**base, "feature_map": "none"}).map_config is None
    assert T.trainer_options({**base, "feature": "orb"}).map_config.feature == "orb"


def test_trainer_options_pass_values_through(tmp_path):
    o = T.trainer_options({
        "bags": ["a"], "output": str(tmp_path / "m.pt"), "image_topic": "/cam/image", "camera_frame": "cam_opt",
        "pose_topic": "/mocap", "depth_topic": "/cam/depth", "map_frame": "world", "model": "lrf-posenet",
        "backbone": "resnet34", "epochs": 3, "batch_size": 8, "input_size": array.array("q", [64, 48]),
        "device": "cpu", "resume": True, "onnx": True, "cache_dir": str(tmp_path / "cache")})
    s, c = o.source, o.config
    assert (s.image_topic, s.camera_frame, s.pose_topic, s.depth_topic, s.map_frame) == \
        ("/cam/image", "cam_opt", "/mocap", "/cam/depth", "world")
    assert (c.model, c.backbone, c.epochs, c.batch_size, c.input_size) == ("lrf-posenet", "resnet34", 3, 8, (64, 48))
    assert (o.device, o.resume, o.onnx, o.cache_dir) == ("cpu", True, True, tmp_path / "cache")


def test_trainer_options_expand_the_home_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # the model's directory must be writable
    o = T.trainer_options({"bags": ["~/a_bag"], "output": "~/m.pt", "cache_dir": "~/cache"})
    assert (o.bags, o.out, o.cache_dir) == ((Path.home() / "a_bag",), Path.home() / "m.pt", Path.home() / "cache")


def test_trainer_config_file_precedence(tmp_path):
    cfg = tmp_path / "train_opts.yaml"
    cfg.write_text("epochs: 7\nlr: 0.001\nloss: geometric\ninput-size: 96x72\nout: " + str(tmp_path / "f.pt") + "\n")
    base = {"bags": ["a"], "config_file": str(cfg)}
    o = T.trainer_options(base)
    # File over defaults (parameters left at their defaults do not override it) ...
    assert (o.config.epochs, o.config.lr, o.config.loss, o.config.input_size) == (7, 0.001, "geometric", (96, 72))
    assert o.out == tmp_path / "f.pt"
    # ... and explicit parameters over the file.
    o = T.trainer_options({**base, "epochs": 5, "output": str(tmp_path / "p.pt"), "input_size": [32, 32]})
    assert (o.config.epochs, o.config.lr, o.config.input_size, o.out) == (5, 0.001, (32, 32), tmp_path / "p.pt")


def test_trainer_options_errors(tmp_path):
    base = {"bags": ["a"], "output": str(tmp_path / "m.pt")}
    with pytest.raises(ValueError, match=r"'config_file' = '.*missing\.yaml': no such file"):
        T.trainer_options({**base, "config_file": str(tmp_path / "missing.yaml")})
    bad = tmp_path / "bad.yaml"
    bad.write_text("epoch: 3\n")
    with pytest.raises(ValueError, match=r"unknown option 'epoch'"):
        T.trainer_options({**base, "config_file": str(bad)})
    bad.write_text("input_size: 96by72\n")
    with pytest.raises(ValueError, match=r"option 'input_size' = '96by72' is invalid: must be WIDTHxHEIGHT"):
        T.trainer_options({**base, "config_file": str(bad)})
    with pytest.raises(ValueError, match=r"'model' = 'dsac' .* posenet, lrf-posenet, camnet, pmnet"):
        T.trainer_options({**base, "model": "dsac"})
    with pytest.raises(ValueError, match=r"'batch_size' = 1 .* \[2, 100000\]"):
        T.trainer_options({**base, "batch_size": 1})
    with pytest.raises(ValueError, match=r"'input_size' = \[64\] .* \[width, height\]"):
        T.trainer_options({**base, "input_size": [64]})
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) lr; valid: bags"):
        T.trainer_options({**base, "lr": 0.1})   # an option, but not a parameter: config_file takes it


@pytest.mark.parametrize("size", [[100000, 100000], [-32, 32], [0, 10], [64, 48, 3]])
def test_trainer_options_refuse_bad_input_sizes_with_the_limit(tmp_path, size):
    base = {"bags": ["a"], "output": str(tmp_path / "m.pt")}
    with pytest.raises(ValueError, match=rf"parameter 'input_size' = {re.escape(str(size))} is invalid: must be "
                                         r"\[width, height\] with both in \[1, 4096\] pixels"):
        T.trainer_options({**base, "input_size": size})
    assert T.trainer_options({**base, "input_size": [4096, 4096]}).config.input_size == (4096, 4096)


def test_trainer_options_check_the_outputs_before_any_work(tmp_path):
    (tmp_path / "dir.pt").mkdir()
    with pytest.raises(ValueError, match=r"cannot write the model '.*dir\.pt': it is a directory"):
        T.trainer_options({"bags": ["a"], "output": str(tmp_path / "dir.pt")})
    with pytest.raises(ValueError, match=r"cannot write the model '.*m\.pt': directory '.*nope' does not exist"):
        T.trainer_options({"bags": ["a"], "output": str(tmp_path / "nope" / "m.pt")})
    (tmp_path / "m.pt.ckpt").mkdir()
    with pytest.raises(ValueError, match=r"cannot write the checkpoint '.*m\.pt\.ckpt': it is a directory"):
        T.trainer_options({"bags": ["a"], "output": str(tmp_path / "m.pt")})
    (tmp_path / "n.onnx").mkdir()
    assert T.trainer_options({"bags": ["a"], "output": str(tmp_path / "n.pt")}).onnx is False
    with pytest.raises(ValueError, match=r"cannot write the ONNX model '.*n\.onnx': it is a directory"):
        T.trainer_options({"bags": ["a"], "output": str(tmp_path / "n.pt"), "onnx": True})


# --------------------------------------------------------------------------
# The trainer's epoch line
# --------------------------------------------------------------------------

def test_parse_epoch_line():
    line = "epoch 7/20 loss 3.6592 val 1.302 m 12.67 deg spread 0.25 (4.6 s)"
    assert T.parse_epoch_line(line) == {"epoch": 7, "epochs": 20, "loss": 3.6592, "val_m": 1.302, "val_deg": 12.67}
    assert T.parse_epoch_line("training posenet (resnet18 ...) on 300 frames") is None


def test_parse_epoch_line_matches_the_trainers_format():
    """The node reads the trainer's own log format: check against its source, not a copy."""
    formats = [m.group(1) for f in sorted((ROOT / "reloc_ros" / "training").glob("*.py"))
               for m in re.finditer(r'"(epoch %d/%d loss %\.4f val %\.3f m %\.2f deg[^"]*)"', f.read_text())]
    assert formats, "the trainer's per-epoch log line was not found"
    line = formats[0] % (3, 30, 0.5, 0.25, 4.5, 0.3, 1.2)
    assert T.parse_epoch_line(line) == {"epoch": 3, "epochs": 30, "loss": 0.5, "val_m": 0.25, "val_deg": 4.5}
