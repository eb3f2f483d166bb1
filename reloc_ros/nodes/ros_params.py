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

"""Parameter specs (:mod:`reloc_ros.runtime.node_params`) as ROS 2 parameters, for both node shells.

:func:`declare_specs` declares them with a ``ParameterDescriptor`` each
(:func:`make_descriptor`: description, read-only flag, range, choices) and
:func:`read_specs` reads them back as plain Python values. The specs, their
checks and what they mean are ROS-free; only this needs rclpy.
"""

from __future__ import annotations

from typing import Any, Sequence

from rclpy.exceptions import (InvalidParameterTypeException, InvalidParameterValueException,
                              ParameterUninitializedException)
from rclpy.parameter import Parameter
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

from reloc_ros.runtime.node_core import plain_value
from reloc_ros.runtime.node_params import ParamSpec

ROS_PARAMETER_TYPES = {
    "bool": Parameter.Type.BOOL, "int": Parameter.Type.INTEGER, "float": Parameter.Type.DOUBLE,
    "str": Parameter.Type.STRING, "str[]": Parameter.Type.STRING_ARRAY, "int[]": Parameter.Type.INTEGER_ARRAY,
}
"""rclpy parameter type of each ``ParamSpec.kind`` (declares a parameter whose default is an empty list)."""


def make_descriptor(spec: ParamSpec) -> ParameterDescriptor:
    """``ParameterDescriptor`` of a spec: description, read-only flag, range, choices."""
    d = ParameterDescriptor(name=spec.name, description=spec.description, read_only=spec.read_only)
    if spec.choices:
        d.additional_constraints = "one of: " + ", ".join(spec.choices)
    if spec.min is not None:
        if spec.kind == "float":
            d.floating_point_range = [FloatingPointRange(from_value=float(spec.min), to_value=float(spec.max),
                                                         step=0.0)]
        else:
            d.integer_range = [IntegerRange(from_value=int(spec.min), to_value=int(spec.max), step=1)]
    return d


def declare_specs(node: Any, specs: Sequence[ParamSpec]) -> dict[str, str]:
    """Declare every parameter of ``specs``; return ``{name: error}`` for overrides ROS refused.

    An override of the wrong type or out of range does not crash the
    constructor: the parameter keeps its default and the error is reported
    (configure fails with it) until a valid value is set.
    """
    errors: dict[str, str] = {}
    for spec in specs:
        default = list(spec.default) if isinstance(spec.default, tuple) else spec.default
        # An empty list has no type for ROS: declare it typed (its value is then unset until overridden).
        value = ROS_PARAMETER_TYPES[spec.kind] if default == [] else default
        try:
            node.declare_parameter(spec.name, value, make_descriptor(spec))
        except (InvalidParameterTypeException, InvalidParameterValueException) as exc:
            hint = " (write floats with a decimal point, e.g. 5.0)" if spec.kind == "float" else ""
            errors[spec.name] = f"parameter '{spec.name}': {exc}{hint}"
            node.declare_parameter(spec.name, value, make_descriptor(spec), ignore_override=True)
    return errors


def read_specs(node: Any, specs: Sequence[ParamSpec]) -> dict[str, Any]:
    """Return the current values of the parameters of ``specs`` as plain Python values."""
    out = {}
    for spec in specs:
        try:
            value = node.get_parameter(spec.name).value
        except ParameterUninitializedException:
            value = list(spec.default) if isinstance(spec.default, tuple) else spec.default
        out[spec.name] = plain_value(value)
    return out
