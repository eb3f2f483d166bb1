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

"""The package installs as ROS 2 expects: versions agree, files land in share/."""

import ast
from pathlib import Path
import re
import sys
import xml.etree.ElementTree as ET

import reloc_ros
from reloc_ros.conversions.messages import BUILDER_MSGTYPES
from reloc_ros.conversions.poses import POSE_MSGTYPES

ROOT = Path(__file__).resolve().parents[1]

# Third-party modules the package imports -> (setup.py requirement, package.xml rosdep key).
THIRD_PARTY = {
    "numpy": ("numpy", "python3-numpy"),
    "cv2": ("opencv-python-headless", "python3-opencv"),
    "scipy": ("scipy", "python3-scipy"),
    "tqdm": ("tqdm", "python3-tqdm"),
    "matplotlib": ("matplotlib", "python3-matplotlib"),
    "yaml": ("pyyaml", "python3-yaml"),
    "rosbags": ("rosbags", "python3-rosbags-pip"),
    "pycolmap": ("pycolmap", "python3-pycolmap-pip"),
    "torch": ("torch", "python3-torch-pip"),
    "onnx": ("onnx", "python3-onnx-pip"),
    "onnxruntime": ("onnxruntime", "python3-onnxruntime-pip"),
}
# -pip keys rosdistro's rosdep/python.yaml has (checked 2026-08-22); the others are in rosdep/reloc_ros.yaml.
ROSDISTRO_PIP_KEYS = {"python3-rosbags-pip", "python3-onnxruntime-pip"}
# Declared though never imported by name: rclpy.lifecycle loads lifecycle_msgs for the lifecycle node.
USED_INDIRECTLY = {"lifecycle_msgs"}
# Imported only by name strings (importlib): ONNX export, and the message classes the converters build.
DYNAMIC_IMPORTS = {"onnx"} | {t.split("/")[0] for t in BUILDER_MSGTYPES + POSE_MSGTYPES}


def package_deps(tags=("depend", "exec_depend")) -> set[str]:
    return {e.text for e in ET.parse(ROOT / "package.xml").getroot() if e.tag in tags}


def imported_modules() -> set[str]:
    """Top-level names of every non-stdlib module imported by the package and its launch files."""
    found = set(DYNAMIC_IMPORTS)
    for path in list((ROOT / "reloc_ros").rglob("*.py")) + list((ROOT / "launch").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m != "reloc_ros"}


def setup_requirements() -> tuple[set[str], dict[str, set[str]]]:
    """install_requires and extras_require of setup.py, as bare distribution names."""
    call = next(n for n in ast.walk(ast.parse((ROOT / "setup.py").read_text()))
                if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")
    kw = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg in ("install_requires", "extras_require")}

    def bare(reqs):
        return {re.split(r"[<>=!~\[ ]", r)[0].lower() for r in reqs}

    return bare(kw["install_requires"]), {k: bare(v) for k, v in kw["extras_require"].items()}


def test_versions_agree():
    xml_version = ET.parse(ROOT / "package.xml").getroot().findtext("version")
    setup_version = re.search(r"version = '([^']+)'", (ROOT / "setup.py").read_text()).group(1)
    assert xml_version == setup_version == reloc_ros.__version__


def test_package_xml_declares_runtime_and_test_dependencies():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.get("format") == "3" and root.findtext("name") == "reloc_ros"
    deps = package_deps()
    for d in ("rclpy", "sensor_msgs", "geometry_msgs", "nav_msgs", "std_srvs", "diagnostic_msgs", "tf2_ros",
              "python3-numpy", "python3-opencv", "python3-torch-pip", "python3-pycolmap-pip"):
        assert d in deps, d
    # Ubuntu's python3-torch is torch 1.8 on 22.04, which cannot load these models.
    assert "python3-torch" not in deps
    tests = {e.text for e in root.findall("test_depend")}
    assert {"ament_copyright", "ament_flake8", "ament_pep257", "ament_xmllint", "python3-pytest"} <= tests
    assert root.find("export/build_type").text == "ament_python"


def test_setup_installs_ament_marker_and_share_dirs():
    text = (ROOT / "setup.py").read_text()
    assert (ROOT / "resource" / "reloc_ros").exists()
    for share in ("'/launch'", "'/config'", "'/models'", "resource_index/packages"):
        assert share in text
    assert "reloc-ros = reloc_ros.cli:main" in text


def test_ros_is_imported_only_by_node_shells():
    """The core must run without ROS: rclpy only under reloc_ros/nodes."""
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "reloc_ros").rglob("*.py")
                 if "nodes" not in p.parts and re.search(r"^\s*(import|from)\s+rclpy", p.read_text(), re.M)]
    assert offenders == []


def test_every_imported_module_is_declared_in_package_xml_and_setup_py():
    install, extras = setup_requirements()
    pip_names = install | set().union(*extras.values())
    deps = package_deps()
    missing = []
    for module in sorted(imported_modules()):
        if module in THIRD_PARTY:
            requirement, key = THIRD_PARTY[module]
            missing += [f"{module}: setup.py lacks {requirement}"] * (requirement not in pip_names)
            missing += [f"{module}: package.xml lacks {key}"] * (key not in deps)
        elif module not in deps:  # a ROS 2 package: rclpy, message packages, launch, ...
            missing.append(f"{module}: package.xml lacks it (or it is a third-party module THIRD_PARTY misses)")
    assert missing == []


def test_every_declared_dependency_is_used():
    imported = imported_modules()
    install, extras = setup_requirements()
    by_requirement = {req: module for module, (req, _) in THIRD_PARTY.items()}
    by_key = {key: module for module, (_, key) in THIRD_PARTY.items()}
    unused_pip = [r for r in install | set().union(*(v for k, v in extras.items() if k != "test"))
                  if by_requirement.get(r) not in imported]
    unused_keys = [k for k in package_deps() - USED_INDIRECTLY if by_key.get(k, k) not in imported]
    assert unused_pip == [] and unused_keys == []


def test_pypi_only_keys_resolve_through_rosdistro_or_the_shipped_rosdep_source():
    import yaml

    shipped = yaml.safe_load((ROOT / "rosdep" / "reloc_ros.yaml").read_text())
    pip_keys = {k for k in package_deps() if k.endswith("-pip")}
    assert pip_keys - ROSDISTRO_PIP_KEYS == set(shipped)
    pip_name = {key: req for req, key in THIRD_PARTY.values()}
    for key, rule in shipped.items():
        for os_name in ("ubuntu", "debian"):  # Humble: jammy, Jazzy: noble; both resolve via the OS entry
            assert rule[os_name] == {"pip": {"packages": [pip_name[key]]}}, (key, os_name)


def test_colcon_test_gets_pytest_from_extras_require():
    """With setuptools >= 72 (which ignores tests_require), colcon test needs the test extra."""
    _, extras = setup_requirements()
    assert "pytest" in extras["test"]
    assert "tests_require=" not in (ROOT / "setup.py").read_text()
