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

"""Parameter specs declared as ROS 2 parameters and read back (skipped where rclpy is not installed)."""

import os

import pytest

rclpy = pytest.importorskip("rclpy")

from rclpy.parameter import Parameter  # noqa: E402

from reloc_ros.nodes.ros_params import declare_specs, make_descriptor, read_specs  # noqa: E402
from reloc_ros.runtime.node_params import ParamSpec  # noqa: E402

SPECS = (
    ParamSpec("rate_hz", 1.0, "A rate.", min=0.0, max=10.0),
    ParamSpec("threads", 2, "Threads.", min=0, max=8, read_only=True),
    ParamSpec("mode", "a", "A mode.", choices=("a", "b")),
    ParamSpec("names", (), "Names.", kind="str[]"),
    ParamSpec("ids", [1, 2], "Ids."),
)


def test_descriptor_carries_description_range_choices_and_read_only():
    rate, threads, mode = (make_descriptor(s) for s in SPECS[:3])
    assert rate.description == "A rate." and not rate.read_only
    assert (rate.floating_point_range[0].from_value, rate.floating_point_range[0].to_value) == (0.0, 10.0)
    assert not rate.integer_range
    assert threads.read_only and (threads.integer_range[0].from_value, threads.integer_range[0].to_value) == (0, 8)
    assert mode.additional_constraints == "one of: a, b"


@pytest.fixture
def node():
    rclpy.init(domain_id=100 + os.getpid() % 100)
    made = []

    def make(**overrides):
        made.append(rclpy.create_node("reloc_ros_params_test", parameter_overrides=[
            Parameter(k, value=v) for k, v in overrides.items()]))
        return made[-1]
    try:
        yield make
    finally:
        for n in made:
            n.destroy_node()
        rclpy.shutdown()


def test_defaults_read_back_as_plain_python(node):
    n = node()
    assert declare_specs(n, SPECS) == {}
    assert read_specs(n, SPECS) == {"rate_hz": 1.0, "threads": 2, "mode": "a", "names": [], "ids": [1, 2]}


def test_overrides_are_read_and_a_wrongly_typed_one_is_reported_not_raised(node):
    n = node(rate_hz=5, mode="b", ids=[7])  # 5: an integer for a double (the classic YAML mistake)
    errors = declare_specs(n, SPECS)
    assert list(errors) == ["rate_hz"] and "decimal point" in errors["rate_hz"]
    values = read_specs(n, SPECS)
    assert values["rate_hz"] == 1.0 and values["mode"] == "b" and values["ids"] == [7]
    assert isinstance(values["ids"], list)
