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

"""Relocalization node parameters and the shared spec machinery, without ROS.

Specs vs YAML and README, options and their errors, launch files. (The trainer node's:
test_training_node_params.py.)
"""

from __future__ import annotations

import array
import ast
from pathlib import Path
import re
import xml.etree.ElementTree as ET

import pytest
import yaml

from reloc_ros.runtime import node_params as P
from reloc_ros.runtime.recovery import RecoveryConfig

ROOT = Path(__file__).resolve().parents[1]


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, name + "."))
        else:
            out[name] = v
    return out


def _yaml_params(name: str) -> dict:
    data = yaml.safe_load((ROOT / "config" / name).read_text())
    assert list(data) == ["/**"], "parameter files apply to the node whatever its name/namespace"
    return _flatten(data["/**"]["ros__parameters"])


def _same(a, b) -> bool:
    """Equal and of the same ROS type (1 != 1.0 != True for typed ROS parameters)."""
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return list(a) == list(b) and all(type(x) is type(y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "lab.pt"
    path.write_bytes(b"not read by relocalization_options")
    return path


# --------------------------------------------------------------------------
# Specs, YAML files, README
# --------------------------------------------------------------------------

def test_specs_are_unique_described_and_valid():
    specs = P.RELOCALIZATION_PARAMS
    names = [s.name for s in specs]
    assert len(names) == len(set(names))
    for s in specs:
        assert s.description.strip() and s.kind in P.KINDS
        assert re.fullmatch(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*", s.name), s.name
        P.check_value(s, list(s.default) if isinstance(s.default, tuple) else s.default)


def test_relocalization_spec_has_the_documented_parameters():
    names = {s.name for s in P.RELOCALIZATION_PARAMS}
    for n in ("model_path", "device", "backend", "image_transport", "map_frame", "odom_frame", "base_frame",
              "camera_frame", "publish_tf", "tf_timeout_s", "max_rate_hz", "min_confidence", "mc_samples",
              "confidence_tolerance_m", "confidence_tolerance_deg", "hypotheses", "initialpose.enabled",
              "initialpose.topic", "initialpose.consecutive", "initialpose.gate_probability",
              "initialpose.min_translation_m", "initialpose.min_rotation_deg", "initialpose.planar",
              "initialpose.min_interval_s", "initialpose.reinit_without_belief", "initialpose.belief_pose_topic",
              "initialpose.belief_std_m", "initialpose.belief_std_rad", "oneshot.frames", "oneshot.timeout_s",
              "autostart", "diagnostic_updater.period", "diagnostics.min_rate_hz", "verify", "allow_unverified"):
        assert n in names, n
    by = P.spec_by_name(P.RELOCALIZATION_PARAMS)
    assert "always" in by["min_confidence"].description.lower()  # ~/pose is always published (unless failed)
    assert "failed" in by["min_confidence"].description.lower()
    assert by["autostart"].read_only
    assert by[P.DIAGNOSTICS_PERIOD_PARAM].read_only  # diagnostic_updater makes its timer once, in the constructor
    assert by["verify"].read_only and by["verify"].default == "auto" and by["verify"].choices == ("auto", "on", "off")
    assert by["allow_unverified"].default is False and not by["allow_unverified"].read_only


def test_relocalize_yaml_lists_every_parameter_with_its_default():
    values = _yaml_params("relocalize.yaml")
    specs = P.spec_by_name(P.RELOCALIZATION_PARAMS)
    assert set(values) == set(specs)
    for name, spec in specs.items():
        assert _same(values[name], spec.default), f"{name}: yaml {values[name]!r} vs spec {spec.default!r}"


def test_config_readme_documents_every_parameter():
    specs = P.RELOCALIZATION_PARAMS
    readme = (ROOT / "config" / "README.md").read_text()
    for s in specs:
        assert f"| `{s.name}` |" in readme, s.name
    # The table is exactly the specs' (regenerate it with params_markdown when a spec changes).
    assert P.params_markdown(specs) in readme


def test_paramspec_rejects_inconsistent_specs():
    with pytest.raises(ValueError, match="both min and max"):
        P.ParamSpec("x", 1.0, "d", min=0.0)
    with pytest.raises(ValueError, match="'x'"):
        P.ParamSpec("x", 5.0, "d", min=0.0, max=1.0)   # default outside its own range
    with pytest.raises(ValueError, match="valid values"):
        P.ParamSpec("x", "gpu", "d", choices=("cpu", "cuda"))
    with pytest.raises(ValueError, match="kind="):
        P.ParamSpec("x", [], "d")
    assert P.ParamSpec("x", [], "d", kind="str[]").default == ()


# --------------------------------------------------------------------------
# check_value
# --------------------------------------------------------------------------

def test_check_value_types_ranges_and_choices():
    by = P.spec_by_name(P.RELOCALIZATION_PARAMS)
    assert P.check_value(by["tf_timeout_s"], 1) == 1.0 and isinstance(P.check_value(by["tf_timeout_s"], 1), float)
    for bad in (True, "0.1", float("nan")):
        with pytest.raises(ValueError, match="tf_timeout_s"):
            P.check_value(by["tf_timeout_s"], bad)
    with pytest.raises(ValueError, match=r"'hypotheses' = 2\.5 .*integer"):
        P.check_value(by["hypotheses"], 2.5)
    with pytest.raises(ValueError, match="true or false"):
        P.check_value(by["publish_tf"], 1)
    for ok in ("auto", "cpu", "cuda", "cuda:0", "cuda:12"):
        assert P.check_value(by["device"], ok) == ok
    for bad in ("gpu", "cuda:", "cuda:x", "CPU", "cuda:-1"):
        with pytest.raises(ValueError, match=r"'device' = .*auto, cpu, cuda, cuda:N"):
            P.check_value(by["device"], bad)
    size, names = P.ParamSpec("size", [2, 3], "d"), P.ParamSpec("names", [], "d", kind="str[]")
    assert size.kind == "int[]" and P.check_value(size, array.array("q", [64, 48])) == [64, 48]  # as rclpy gives it
    with pytest.raises(ValueError, match=r"'size' = \[64\.0, 48\.0\] .*list of integers"):
        P.check_value(size, [64.0, 48.0])
    with pytest.raises(ValueError, match="list of integers"):
        P.check_value(size, [True, 2])
    assert P.check_value(names, ("a", "b")) == ["a", "b"]
    with pytest.raises(ValueError, match=r"'names' = 'a_bag' .*list of strings"):
        P.check_value(names, "a_bag")


def test_check_values_fills_defaults_and_rejects_unknown_names():
    v = P.check_values(P.RELOCALIZATION_PARAMS, {"max_rate_hz": 5})
    assert v["max_rate_hz"] == 5.0 and v["base_frame"] == "base_link" and len(v) == len(P.RELOCALIZATION_PARAMS)
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) initialpose\.enable; valid: model_path"):
        P.check_values(P.RELOCALIZATION_PARAMS, {"initialpose.enable": True})


# --------------------------------------------------------------------------
# relocalization_options
# --------------------------------------------------------------------------

def test_relocalization_options_defaults(model_file):
    o = P.relocalization_options({"model_path": str(model_file)})
    assert o.relocalizer_kwargs == {"model_path": str(model_file), "device": "auto", "backend": "auto",
                                    "samples": None, "tolerance": (0.5, 10.0), "hypotheses": 8, "threads": None,
                                    "verify": "auto"}
    assert P.relocalization_options({"model_path": str(model_file), "cpu_threads": 2}).relocalizer_kwargs[
        "threads"] == 2
    assert o.recovery == RecoveryConfig(enabled=False)   # defaults of the spec are those of the core
    assert not o.recovery_enabled
    assert (o.oneshot_frames, o.oneshot_timeout_s) == (5, 10.0)
    assert (o.map_frame, o.odom_frame, o.base_frame, o.camera_frame) == ("", "odom", "base_link", "")
    assert o.publish_tf and o.autostart and o.image_transport == "raw"
    assert o.min_period_ns == 0 and o.belief_std == (0.5, 0.2)
    assert o.initialpose_topic == "/initialpose" and o.belief_pose_topic == "/amcl_pose"
    # Only verified poses move the robot's belief by default.
    assert o.allow_unverified is False
    assert (o.acts_on("verified"), o.acts_on("unverified"), o.acts_on("failed")) == (True, False, False)


def test_relocalization_options_pass_values_through(model_file):
    o = P.relocalization_options({
        "model_path": str(model_file), "device": "cuda:1", "backend": "torchscript", "mc_samples": 16,
        "confidence_tolerance_m": 1.0, "confidence_tolerance_deg": 5, "hypotheses": 0, "max_rate_hz": 4.0,
        "min_confidence": 0.7, "initialpose.enabled": True, "initialpose.consecutive": 5,
        "initialpose.planar": False, "initialpose.min_interval_s": 2.0, "initialpose.gate_probability": 0.99,
        "initialpose.min_translation_m": 1.0, "initialpose.min_rotation_deg": 30.0,
        "initialpose.reinit_without_belief": False, "oneshot.frames": 3, "odom_frame": "",
        "verify": "on", "allow_unverified": True,
    })
    k = o.relocalizer_kwargs
    assert (k["device"], k["backend"], k["samples"], k["tolerance"], k["hypotheses"]) == \
        ("cuda:1", "torchscript", 16, (1.0, 5.0), 0)
    assert o.recovery == RecoveryConfig(enabled=True, consecutive=5, min_confidence=0.7, gate_probability=0.99,
                                        min_translation_m=1.0, min_rotation_deg=30.0, planar=False,
                                        min_interval_s=2.0, reinit_without_belief=False)
    assert o.min_period_ns == 250_000_000 and o.odom_frame == "" and o.oneshot_frames == 3
    assert k["verify"] == "on" and o.allow_unverified is True
    assert (o.acts_on("verified"), o.acts_on("unverified"), o.acts_on("failed")) == (True, True, False)


@pytest.mark.parametrize("values, pattern", [
    ({}, r"'model_path' is empty: set it to an exported reloc_ros model file .*model:="),
    ({"model_path": "/nonexistent/lab.pt"}, r"'model_path' = '/nonexistent/lab\.pt': no such file"),
    ({"device": "gpu"}, r"'device' = 'gpu' is invalid: valid values are auto, cpu, cuda, cuda:N"),
    ({"backend": "tensorrt"}, r"'backend' = 'tensorrt' .* auto, torchscript, onnx"),
    ({"backend": "onnx"}, r"'backend' = 'onnx' but model_path .* not an \.onnx file"),
    ({"image_transport": "theora"}, r"'image_transport' = 'theora' .* raw, compressed"),
    ({"min_confidence": 1.5}, r"'min_confidence' = 1\.5 is invalid: must be in \[0, 1\]"),
    ({"mc_samples": 1}, r"'mc_samples' = 1 is invalid: must be 0 .* or >= 2"),
    ({"mc_samples": -3}, r"'mc_samples' = -3 .* \[0, 1000\]"),
    ({"initialpose.consecutive": 0}, r"'initialpose\.consecutive' = 0 .* \[1, 1000\]"),
    ({"initialpose.gate_probability": 1.0}, r"'initialpose\.gate_probability' = 1\.0 .* \[0\.5, 0\.999999\]"),
    ({"base_frame": ""}, r"'base_frame' must not be empty"),
    ({"odom_frame": "/odom"}, r"'odom_frame' = '/odom' .* no leading slash .*'odom'"),
    ({"odom_frame": "base_link"}, r"'odom_frame' and 'base_frame' are both 'base_link'"),
    ({"map_frame": "odom"}, r"'map_frame' = 'odom' equals odom_frame or base_frame"),
    ({"initialpose.topic": ""}, r"'initialpose\.topic' must not be empty"),
    ({"initialpose.topic": "/init pose"}, r"'initialpose\.topic' = '/init pose' is not a valid ROS topic"),
    ({"tf_timeout_s": "0.1"}, r"'tf_timeout_s' = '0\.1' is invalid: must be a number"),
    ({"publish_tf": "true"}, r"'publish_tf' = 'true' is invalid: must be true or false"),
    ({"verify": "yes"}, r"'verify' = 'yes' is invalid: valid values are auto, on, off"),
    ({"verify": True}, r"'verify' = True is invalid: must be a string"),
    ({"allow_unverified": "false"}, r"'allow_unverified' = 'false' is invalid: must be true or false"),
])
def test_relocalization_options_errors_name_the_parameter(model_file, values, pattern):
    if "model_path" not in values and values:
        values = {"model_path": str(model_file), **values}
    with pytest.raises(ValueError, match=pattern):
        P.relocalization_options(values)


def test_recovery_errors_name_the_ros_parameter(model_file, monkeypatch):
    # A constraint only the core knows (the spec's range allows it): the error still names the ROS parameter.
    monkeypatch.setattr(P, "RecoveryConfig", lambda **kw: RecoveryConfig(**{**kw, "min_rotation_deg": 200.0}))
    with pytest.raises(ValueError, match=r"^parameter 'initialpose\.min_rotation_deg' is invalid: "
                                         r"must be in \[0, 180\], got 200\.0"):
        P.relocalization_options({"model_path": str(model_file)})


# --------------------------------------------------------------------------
# Launch files, entry points, package.xml
# --------------------------------------------------------------------------

def _launch_arguments(path: Path) -> dict[str, str]:
    """Map DeclareLaunchArgument names to their default_value source, read with ast (no launch import)."""
    tree = ast.parse(path.read_text(), str(path))
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == \
                "DeclareLaunchArgument":
            name = node.args[0].value
            kw = {k.arg: k.value for k in node.keywords}
            assert "description" in kw and ast.literal_eval(kw["description"]).strip(), f"{name}: no description"
            out[name] = ast.unparse(kw["default_value"]) if "default_value" in kw else None
    return out


@pytest.mark.parametrize("name, expected", [
    ("relocalize.launch.py", {"model": "''", "image_topic": "'/camera/image_raw'", "params_file": "default_params",
                              "namespace": "''", "use_sim_time": "'false'", "log_level": "'info'",
                              "autostart": "'true'", "device": "'auto'", "camera_info_topic": "''",
                              "verify": "''", "allow_unverified": "''", "rviz": "'false'"}),
    ("train.launch.py", {"bags": "''", "output": "''", "image_topic": "''", "params_file": "default_params",
                         "use_sim_time": "'false'", "log_level": "'info'"}),
])
def test_launch_files_compile_and_declare_their_arguments(name, expected):
    path = ROOT / "launch" / name
    source = path.read_text()
    compile(source, str(path), "exec")
    assert _launch_arguments(path) == expected
    imported = {n.module.split(".")[0] if isinstance(n, ast.ImportFrom) else a.name.split(".")[0]
                for n in ast.walk(ast.parse(source)) if isinstance(n, (ast.Import, ast.ImportFrom))
                for a in (n.names if isinstance(n, ast.Import) else [n])}
    assert imported <= {"os", "launch", "launch_ros", "ament_index_python"}, imported
    assert "generate_launch_description" in source
    default_yaml = "relocalize.yaml" if name.startswith("relocalize") else "train.yaml"
    assert f"'{default_yaml}'" in source and "get_package_share_directory('reloc_ros')" in source


def test_nav2_launch_brings_the_node_up_under_its_own_lifecycle_manager():
    path = ROOT / "launch" / "nav2_relocalization.launch.py"
    source = path.read_text()
    compile(source, str(path), "exec")
    args = _launch_arguments(path)
    forwarded = ast.literal_eval(re.search(r"^FORWARDED = (\(.*?\))$", source, re.M).group(1))
    # Every forwarded argument is declared here and exists in relocalize.launch.py.
    assert set(forwarded) <= set(args) <= set(_launch_arguments(ROOT / "launch" / "relocalize.launch.py"))
    assert "('autostart', 'false')" in source  # the manager, not the node, brings it up
    # ... in a scoped group: an include's launch arguments outlive it, and its autostart 'false' would otherwise
    # be the manager's autostart too (seen on Humble: the manager never configured the node).
    groups = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call)
              and getattr(n.func, "id", "") == "GroupAction"]
    included = [n for g in groups for n in ast.walk(g) if isinstance(n, ast.Call)
                and getattr(n.func, "id", "") == "IncludeLaunchDescription"]
    assert len(included) == 1 and all(ast.literal_eval(k.value) for g in groups for k in g.keywords
                                      if k.arg == "scoped")
    assert "executable='lifecycle_manager'" in source and "'node_names': ['relocalization']" in source
    assert "'nav2_relocalization.yaml'" in source
    # The Nav2 parameters are valid for the node, and say what running beside AMCL needs.
    values = _yaml_params("nav2_relocalization.yaml")
    assert P.check_values(P.RELOCALIZATION_PARAMS, values)
    assert values["publish_tf"] is False and values["initialpose.enabled"] is True
    assert values["initialpose.belief_pose_topic"] == "/amcl_pose" and values["base_frame"] == "base_footprint"


def test_launch_files_start_the_installed_executables():
    setup = (ROOT / "setup.py").read_text()
    assert "relocalization_node = reloc_ros.nodes.relocalization_node:main" in setup
    assert "trainer_node = reloc_ros.nodes.trainer_node:main" in setup
    assert "reloc-ros = reloc_ros.cli:main" in setup
    reloc = (ROOT / "launch" / "relocalize.launch.py").read_text()
    assert "executable='relocalization_node'" in reloc and "('image', image_topic)" in reloc
    assert "'/compressed'" in reloc and "'--log-level'" in reloc
    assert "('camera_info', camera_info_topic)" in reloc
    for name in ("verify", "allow_unverified"):   # passed to the node as parameters
        assert f"overrides['{name}']" in reloc, name
    train = (ROOT / "launch" / "train.launch.py").read_text()
    assert "executable='trainer_node'" in train and "OnProcessExit" in train and "Shutdown(" in train


def _launch_functions(path: Path, *names: str) -> dict:
    """Return the named module-level functions of a launch file, compiled alone (no launch import)."""
    tree = ast.parse(path.read_text(), str(path))
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in names]
    assert {d.name for d in defs} == set(names)
    namespace: dict = {}
    exec(compile(ast.Module(body=defs, type_ignores=[]), str(path), "exec"), namespace)
    return {n: namespace[n] for n in names}


def test_relocalize_launch_camera_info_and_bool_arguments():
    f = _launch_functions(ROOT / "launch" / "relocalize.launch.py", "_sibling_camera_info", "_bool_or_text")
    sibling, to_bool = f["_sibling_camera_info"], f["_bool_or_text"]
    assert sibling("/camera/image_raw") == "/camera/camera_info"
    assert sibling("/camera/color/image_raw/") == "/camera/color/camera_info"
    assert sibling("/image_raw") == "/camera_info"
    assert sibling("image") == "camera_info" and sibling("cam/image_rect") == "cam/camera_info"
    assert (to_bool("true"), to_bool(" False "), to_bool("1"), to_bool("off")) == (True, False, True, False)
    assert to_bool("maybe") == "maybe"   # passed on: the node refuses a string for a bool parameter


def test_package_xml_has_the_node_dependencies():
    root = ET.parse(ROOT / "package.xml").getroot()
    deps = {e.text for e in root if e.tag in ("depend", "exec_depend")}
    for d in ("rclpy", "lifecycle_msgs", "rcl_interfaces", "std_srvs", "diagnostic_msgs", "geometry_msgs",
              "sensor_msgs", "tf2_ros", "tf2_msgs", "launch", "launch_ros", "ament_index_python"):
        assert d in deps, d
