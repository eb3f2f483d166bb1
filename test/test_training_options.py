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

"""The one declaration of the train options: its defaults, the CLI made from it, and what option dicts build."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from reloc_ros.cli import build_parser, main
from reloc_ros.data.bag import BagSource
from reloc_ros.mapping.build import MapConfig
from reloc_ros.training import options as TO
from reloc_ros.training.config import TrainConfig

DATACLASSES = {"train": TrainConfig, "source": BagSource, "map": MapConfig}


def _train_parser():
    return build_parser().parse_args(["train"]).train_parser


# --------------------------------------------------------------------------
# The declaration
# --------------------------------------------------------------------------

def test_options_are_unique_and_fill_real_fields_with_their_defaults():
    dests = [o.dest for o in TO.TRAIN_OPTIONS]
    assert len(dests) == len(set(dests))
    flags = [f for o in TO.TRAIN_OPTIONS for f in o.flags]
    assert len(flags) == len(set(flags)) and all(f.startswith("--") for f in flags)
    assert [o.dest for o in TO.TRAIN_OPTIONS if o.positional] == ["bags"]
    for o in TO.TRAIN_OPTIONS:
        assert o.help.strip() and o.type in TO.TYPES, o.dest
        if o.section is None:
            continue
        cls = DATACLASSES[o.section]
        assert o.field in {f.name for f in fields(cls)}, o.dest
        dataclass_default = getattr(cls(), o.field)
        assert ((not o.default) if o.negate else o.default) == dataclass_default, o.dest
    # The bag source and feature map options are the train options' too, in one place.
    assert set(TO.BAG_SOURCE_OPTIONS) | set(TO.MAP_OPTIONS) <= set(TO.TRAIN_OPTIONS)
    assert {o.field for o in TO.BAG_SOURCE_OPTIONS} == {f.name for f in fields(BagSource)}


def test_train_option_rejects_inconsistent_declarations():
    with pytest.raises(ValueError, match="'x': type must be one of"):
        TO.TrainOption("x", 1, "h", type="number")
    with pytest.raises(ValueError, match="'x': section must be one of"):
        TO.TrainOption("x", 1, "h", type="int", section="nerf")
    with pytest.raises(ValueError, match="'x': default 'c' is not one of its choices"):
        TO.TrainOption("x", "c", "h", choices=("a", "b"))
    o = TO.TrainOption("some_thing", None, "h", section="train")
    assert o.flags == ("--some-thing",) and o.field == "some_thing" and not o.positional


# --------------------------------------------------------------------------
# The CLI's train options come from it
# --------------------------------------------------------------------------

def test_the_train_parser_is_the_declaration():
    parser = _train_parser()
    by_dest = TO.option_by_dest()
    actions = {a.dest: a for a in parser._actions if a.dest not in ("help",)}
    assert set(actions) == set(by_dest)     # no option is added beside the declaration
    for dest, a in actions.items():
        o = by_dest[dest]
        assert tuple(a.option_strings) == o.flags and a.help == o.help, dest
        assert (tuple(a.choices) if a.choices else None) == o.choices, dest
        if not o.positional:
            assert a.default == o.default, dest
    # An empty command line gives the declared defaults.
    parsed = vars(parser.parse_args([]))
    for key in ("func", "train_parser"):
        parsed.pop(key)
    assert parsed == TO.default_options()


def test_cli_train_values_build_what_the_option_dict_builds():
    args = build_parser().parse_args(["train", "a_bag", "--out", "m.pt", "--no-augment", "--input-size", "64x48",
                                      "--tolerance", "0.2", "--max-features", "500", "--model", "camnet"])
    from reloc_ros.cli import bag_source_from_args, map_config_from_args, train_config_from_args

    cfg = train_config_from_args(args)
    assert cfg == TrainConfig(model="camnet", augment=False, input_size=(64, 48))
    assert cfg == TO.train_config_from_options({"model": "camnet", "no_augment": True, "input_size": (64, 48)})
    assert bag_source_from_args(args) == BagSource(tolerance_s=0.2)
    assert map_config_from_args(args) == MapConfig(max_features=500) == TO.map_config_from_options(
        {"max_features": 500})


def test_cli_config_file_errors_say_the_option(tmp_path, capsys):
    cfg = tmp_path / "t.yaml"
    cfg.write_text("input-size: 96by72\n")
    with pytest.raises(SystemExit) as exc:
        main(["train", "a_bag", "--out", str(tmp_path / "m.pt"), "--config", str(cfg)])
    assert exc.value.code == 2 and "option 'input-size': size '96by72' is not WIDTHxHEIGHT" in capsys.readouterr().err


# --------------------------------------------------------------------------
# Option dicts -> TrainConfig, BagSource, MapConfig
# --------------------------------------------------------------------------

def test_missing_options_take_their_defaults():
    assert TO.train_config_from_options({}) == TrainConfig()
    assert TO.train_config_from_options(TO.default_options()) == TrainConfig()
    assert TO.train_config_from_options({"epochs": 3, "no_augment": False, "out": "ignored"}) == \
        TrainConfig(epochs=3)
    assert TO.map_config_from_options({"feature": "orb"}) == MapConfig(feature="orb")
    assert TO.bag_source_from_options({}) == BagSource()


def test_bag_source_left_out_options_come_from_the_model():
    trained = {"image_topic": "/cam", "map_frame": "world", "tolerance_s": 0.3, "depth_topic": "/depth"}
    s = TO.bag_source_from_options({"image_topic": None, "map_frame": None, "max_gap": 2.0}, trained_with=trained)
    assert (s.image_topic, s.map_frame, s.tolerance_s, s.max_gap_s) == ("/cam", "world", 0.3, 2.0)
    assert s.depth_topic is None   # a query bag need not have the training depth
    s = TO.bag_source_from_options({"map_frame": "odom", "depth_topic": "/d"}, trained_with=trained)
    assert (s.map_frame, s.image_topic, s.depth_topic) == ("odom", "/cam", "/d")


def test_default_options_are_fresh_lists():
    a, b = TO.default_options(), TO.default_options()
    assert a["bags"] == [] and a["bags"] is not b["bags"]
    assert a["cache_dir"] == Path.home() / ".cache" / "reloc_ros" and a["out"] is None


# --------------------------------------------------------------------------
# Config files and sizes
# --------------------------------------------------------------------------

def test_read_config_file(tmp_path):
    cfg = tmp_path / "t.yaml"
    cfg.write_text("epochs: 7\nval-fraction: 0.2\ninput-size: 96x72\nmax_features: 100\nout: /x/m.pt\n")
    assert TO.read_config_file(cfg) == {"epochs": 7, "val_fraction": 0.2, "input_size": (96, 72),
                                        "max_features": 100, "out": "/x/m.pt"}
    cfg.write_text("")
    assert TO.read_config_file(cfg) == {}


@pytest.mark.parametrize("text, pattern", [
    ("epoch: 3\n", r"unknown option 'epoch'; valid: backbone, backbone_weights, batch_size, beta, cache_dir"),
    ("bags: [a]\n", r"unknown option 'bags'"),
    ("config: other.yaml\n", r"unknown option 'config'"),
    ("- epochs\n", r"must hold a mapping of option: value"),
    ("epochs: [\n", r"cannot read config file"),
    ("input_size: -3x10\n", r"option 'input_size': size '-3x10' must have positive width and height"),
])
def test_read_config_file_errors(tmp_path, text, pattern):
    cfg = tmp_path / "t.yaml"
    cfg.write_text(text)
    with pytest.raises(ValueError, match=pattern):
        TO.read_config_file(cfg)


def test_read_config_file_missing(tmp_path):
    with pytest.raises(ValueError, match=r"cannot read config file '.*nope\.yaml'"):
        TO.read_config_file(tmp_path / "nope.yaml")


def test_parse_size():
    assert TO.parse_size("160x120") == (160, 120) and TO.parse_size("64X48") == (64, 48)
    for bad, pattern in (("160by120", "not WIDTHxHEIGHT"), ("1x2x3", "not WIDTHxHEIGHT"), ("0x5", "positive")):
        with pytest.raises(ValueError, match=pattern):
            TO.parse_size(bad)
