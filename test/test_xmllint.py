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

"""ament_xmllint on package.xml (runs where the ament tools are installed)."""

import pytest

ament_xmllint = pytest.importorskip("ament_xmllint.main", reason="ament_xmllint not installed (no ROS 2)")


@pytest.mark.linter
@pytest.mark.xmllint
def test_xmllint():
    rc = ament_xmllint.main(argv=[])
    assert rc == 0, "Found errors"
