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

"""Docstrings: ament_pep257 on a ROS 2 system, pydocstyle with the same settings elsewhere."""

from pathlib import Path
import subprocess
import sys

import pytest

# ament_pep257's own ignore list (its 'ament' convention: every other pydocstyle code is checked) ...
AMENT_PEP257_IGNORE = "D100,D101,D102,D103,D104,D105,D106,D107,D203,D212,D404"
# ... plus what reloc_ros's docstring style differs in: the summary on the first line (PEP 257's
# examples; ament's list would want it on the second, D213) and Google-style "Args:" sections, which
# pydocstyle reads as numpy sections without underlines (D406, D407, D413).
RELOC_ROS_ADD_IGNORE = "D213,D406,D407,D413"


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257():
    ament_pep257 = pytest.importorskip("ament_pep257.main", reason="ament_pep257 not installed (no ROS 2)")
    rc = ament_pep257.main(argv=["--add-ignore", RELOC_ROS_ADD_IGNORE, ".", "test"])
    assert rc == 0, "Found code style errors / warnings"


@pytest.mark.linter
@pytest.mark.pep257
def test_pydocstyle_with_ament_settings():
    pytest.importorskip("pydocstyle", reason="pydocstyle not installed")
    root = Path(__file__).resolve().parents[1]
    # The same selection as the ament test above: everything but the two lists.
    res = subprocess.run([sys.executable, "-m", "pydocstyle", f"--ignore={AMENT_PEP257_IGNORE},{RELOC_ROS_ADD_IGNORE}",
                          "reloc_ros", "test", "launch", "setup.py"],
                         cwd=root, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
