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

from pathlib import Path
import re
import xml.etree.ElementTree as ET

import reloc_ros

ROOT = Path(__file__).resolve().parents[1]


def test_versions_agree():
    xml_version = ET.parse(ROOT / "package.xml").getroot().findtext("version")
    setup_version = re.search(r"version = '([^']+)'", (ROOT / "setup.py").read_text()).group(1)
    assert xml_version == setup_version == reloc_ros.__version__


def test_package_xml_declares_runtime_and_test_dependencies():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.get("format") == "3" and root.findtext("name") == "reloc_ros"
    deps = {e.text for e in root if e.tag in ("depend", "exec_depend")}
    for d in ("rclpy", "sensor_msgs", "geometry_msgs", "nav_msgs", "std_srvs", "diagnostic_msgs", "tf2_ros",
              "cv_bridge", "python3-numpy", "python3-opencv", "python3-torch"):
        assert d in deps, d
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
