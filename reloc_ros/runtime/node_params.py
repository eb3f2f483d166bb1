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

"""The relocalization node's ROS parameters, as data, and what they turn into; the spec machinery. ROS-free.

:class:`ParamSpec`, :func:`check_value` / :func:`check_values` and
:func:`params_markdown` are shared by both nodes: the node shells
(:mod:`reloc_ros.nodes`) declare every parameter of a spec list with a
``ParameterDescriptor`` built from its :class:`ParamSpec` (description,
read-only flag, range, choices) and read the values back as a plain dict.
For ``relocalization_node`` that dict goes to :func:`relocalization_options`,
which checks every value against :data:`RELOCALIZATION_PARAMS` and builds the
core's options (``Relocalizer`` keyword arguments,
:class:`~reloc_ros.runtime.recovery.RecoveryConfig`), raising ``ValueError``
that names the parameter, the bad value and what is valid. The trainer node's
parameters are made from the options of ``reloc-ros train``, on the training
side (:mod:`reloc_ros.training.node_params`); nothing here depends on
training or the command line. So all of this is tested without ROS, and
``config/*.yaml`` and ``config/README.md`` are checked against the specs.
"""

from __future__ import annotations

import array
from dataclasses import dataclass, field
import math
import numbers
from pathlib import Path
import re
from typing import Any, Mapping, Sequence

from reloc_ros.runtime.engine import VERIFY_MODES
from reloc_ros.runtime.frame_status import acts_on
from reloc_ros.runtime.recovery import RecoveryConfig

__all__ = [
    "ParamSpec", "RELOCALIZATION_PARAMS", "KINDS", "DIAGNOSTICS_PERIOD_PARAM",
    "check_values", "check_value", "spec_by_name", "params_markdown",
    "RelocalizationOptions", "relocalization_options",
]

DIAGNOSTICS_PERIOD_PARAM = "diagnostic_updater.period"
"""The period parameter diagnostic_updater's ``Updater`` reads (the node declares it first, with a descriptor)."""

KINDS = ("bool", "int", "float", "str", "str[]", "int[]")
"""Parameter types: ROS bool, integer, double, string, string array, integer array."""


@dataclass(frozen=True)
class ParamSpec:
    """One ROS parameter: name, default, description and constraints.

    ``kind`` is inferred from the default (``bool``, ``int``, ``float``,
    ``str``, ``str[]``, ``int[]``); only an empty array default needs it
    given. ``min``/``max`` (both or neither) are inclusive and become a
    ``FloatingPointRange``/``IntegerRange``; ``choices`` become the
    descriptor's ``additional_constraints``. A choice may end in ``:N``
    (``cuda:N``): any non-negative integer there.
    """

    name: str
    default: Any
    description: str
    read_only: bool = False
    min: float | None = None  # noqa: A003 - the bound's name in the ROS parameter descriptor
    max: float | None = None  # noqa: A003 - as min
    choices: tuple[str, ...] | None = None
    kind: str = ""

    def __post_init__(self) -> None:
        kind = self.kind or _infer_kind(self.name, self.default)
        if kind not in KINDS:
            raise ValueError(f"parameter spec '{self.name}': kind must be one of {', '.join(KINDS)}, got {kind!r}")
        object.__setattr__(self, "kind", kind)
        if isinstance(self.default, list):
            object.__setattr__(self, "default", tuple(self.default))
        if (self.min is None) != (self.max is None):
            raise ValueError(f"parameter spec '{self.name}': give both min and max, or neither")
        if self.min is not None and kind not in ("int", "float"):
            raise ValueError(f"parameter spec '{self.name}': a range needs an int or float parameter")
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.choices))
        # The default must satisfy the spec itself (a typo here would ship a node that cannot start).
        check_value(self, self.default)

    @property
    def constraints(self) -> str:
        """Return the choices and range in words (the descriptor's additional_constraints); empty if none."""
        parts = []
        if self.choices:
            parts.append("one of: " + ", ".join(self.choices))
        if self.min is not None:
            parts.append(f"range [{_fmt(self.min)}, {_fmt(self.max)}]")
        return "; ".join(parts)


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _infer_kind(name: str, default: Any) -> str:
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    if isinstance(default, str):
        return "str"
    if isinstance(default, (list, tuple)) and default:
        if all(isinstance(v, str) for v in default):
            return "str[]"
        if all(isinstance(v, int) and not isinstance(v, bool) for v in default):
            return "int[]"
    raise ValueError(f"parameter spec '{name}': cannot infer the type of default {default!r}; give kind=")


def spec_by_name(specs: Sequence[ParamSpec]) -> dict[str, ParamSpec]:
    """Return the specs keyed by parameter name."""
    return {s.name: s for s in specs}


# --------------------------------------------------------------------------
# Checking values
# --------------------------------------------------------------------------

def _choice_ok(value: str, choices: Sequence[str]) -> bool:
    for c in choices:
        if c.endswith(":N"):
            if re.fullmatch(re.escape(c[:-1]) + r"\d+", value):
                return True
        elif value == c:
            return True
    return False


def check_value(spec: ParamSpec, value: Any) -> Any:
    """Return ``value`` as the spec's Python type; ``ValueError`` naming the parameter, value and what is valid.

    Accepts what rclpy hands back (``array.array`` for arrays) and ints for
    float parameters; rejects bools for numbers and anything else of the
    wrong type.
    """
    name, kind = spec.name, spec.kind
    bad = f"parameter '{name}' = {value!r} is invalid"
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"{bad}: must be true or false")
        return value
    if kind in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"{bad}: must be {'an integer' if kind == 'int' else 'a number'}")
        if kind == "int":
            if not isinstance(value, numbers.Integral):
                raise ValueError(f"{bad}: must be an integer")
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"{bad}: must be a finite number")
        if spec.min is not None and not spec.min <= value <= spec.max:
            raise ValueError(f"{bad}: must be in [{_fmt(spec.min)}, {_fmt(spec.max)}]")
        return value
    if kind == "str":
        if not isinstance(value, str):
            raise ValueError(f"{bad}: must be a string")
        if spec.choices and not _choice_ok(value, spec.choices):
            raise ValueError(f"{bad}: valid values are {', '.join(spec.choices)}")
        return value
    # Arrays: rclpy gives integer arrays as array.array('q').
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, array.array)):
        raise ValueError(f"{bad}: must be a list of {'strings' if kind == 'str[]' else 'integers'}")
    items = list(value)
    if kind == "str[]":
        if not all(isinstance(v, str) for v in items):
            raise ValueError(f"{bad}: must be a list of strings")
    elif not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in items):
        raise ValueError(f"{bad}: must be a list of integers")
    return [int(v) for v in items] if kind == "int[]" else items


def check_values(specs: Sequence[ParamSpec], values: Mapping[str, Any]) -> dict[str, Any]:
    """Check a dict of parameter values against ``specs``; missing ones get their defaults.

    Unknown names raise ``ValueError`` listing the valid ones.
    """
    by_name = spec_by_name(specs)
    unknown = sorted(set(values) - set(by_name))
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)}; valid: {', '.join(by_name)}")
    out = {}
    for spec in specs:
        default = list(spec.default) if isinstance(spec.default, tuple) else spec.default
        out[spec.name] = check_value(spec, values.get(spec.name, default))
    return out


RELOCALIZATION_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("model_path", "", "Exported reloc_ros model file (.pt TorchScript or .onnx). Required: configure "
              "fails while it is empty."),
    ParamSpec("device", "auto", "Inference device: auto (CUDA if available, else CPU with a warning), cpu, cuda "
              "or cuda:N.", choices=("auto", "cpu", "cuda", "cuda:N")),
    ParamSpec("backend", "auto", "Inference backend: auto (ONNX Runtime for .onnx files, TorchScript otherwise), "
              "torchscript or onnx.", choices=("auto", "torchscript", "onnx")),
    ParamSpec("cpu_threads", 0, "CPU threads for inference; 0 = the library's default (all cores). On a robot "
              "whose CPU is busy with other nodes, 1 or 2 avoids thread contention that can make latency many "
              "times worse.", min=0, max=256, read_only=True),
    ParamSpec("image_transport", "raw", "raw: subscribe to 'image' (sensor_msgs/Image); compressed: subscribe to "
              "'image/compressed' (sensor_msgs/CompressedImage, jpeg/png), the image_transport naming.",
              choices=("raw", "compressed")),
    ParamSpec("map_frame", "", "Frame of the published poses and the parent of the TF correction; '' = the "
              "model's map frame (from its metadata)."),
    ParamSpec("odom_frame", "odom", "Odometry frame: the node publishes map -> odom (REP-105). '' = the robot has "
              "no odom frame: publish map -> base_frame directly."),
    ParamSpec("base_frame", "base_link", "Robot body frame whose pose is published (the camera pose is moved "
              "there with the TF base_frame <- camera)."),
    ParamSpec("camera_frame", "", "Camera (optical) frame of the images; '' = each image's header.frame_id (then "
              "the model's camera frame if that is empty)."),
    ParamSpec("publish_tf", True, "Broadcast the map -> odom correction (map -> base_frame without odom) for "
              "verified estimates (unverified ones too with allow_unverified) with confidence >= min_confidence."),
    ParamSpec("transform_tolerance_s", 0.5, "How far into the future the map -> odom correction is stamped "
              "(as AMCL's transform_tolerance), so TF users may look it up until then without extrapolation "
              "errors.", min=0.0, max=10.0),
    ParamSpec("tf_rebroadcast_hz", 10.0, "Rate at which the last map -> odom correction is re-broadcast (stamped "
              "now + transform_tolerance_s) while publish_tf is on, so TF never runs dry between confident "
              "frames; 0: only when a frame corrects it.", min=0.0, max=100.0),
    ParamSpec("tf_timeout_s", 0.1, "How long to wait for a TF lookup (camera extrinsics, odom -> base at the "
              "image stamp), in seconds.", min=0.0, max=10.0),
    ParamSpec("max_rate_hz", 0.0, "Most images relocalized per second (by image stamp); faster frames are "
              "dropped before decoding. 0 = as fast as inference allows.", min=0.0, max=1000.0),
    ParamSpec("min_confidence", 0.5, "Confidence a verified pose (or, with allow_unverified, an unverified one) "
              "needs for the TF correction, /initialpose and ~/relocalize. ~/pose is always published for verified "
              "and unverified frames, with its honest covariance (never for failed ones); this gates only the TF "
              "correction and re-initialisation.", min=0.0, max=1.0),
    ParamSpec("mc_samples", 0, "MC-dropout samples per frame for the covariance; 0 = the model's calibrated "
              "value. Otherwise >= 2 (more is smoother and slower).", min=0, max=1000),
    ParamSpec("confidence_tolerance_m", 0.5, "Confidence = probability, under the covariance, that the pose is "
              "within this distance (and confidence_tolerance_deg) of the truth.", min=0.001, max=1000.0),
    ParamSpec("confidence_tolerance_deg", 10.0, "Rotation tolerance of the confidence, in degrees.",
              min=0.01, max=180.0),
    ParamSpec("hypotheses", 8, "Most pose hypotheses (MC-dropout samples) published on ~/hypotheses per frame.",
              min=0, max=1000),
    ParamSpec("verify", "auto", "Geometric verification of each learned pose with the model file's 3-D feature "
              "map (feature matching, PnP-RANSAC, refinement; intrinsics from camera_info): auto = verify when the "
              "model file has a map; on = configure fails for a model without one; off = learned poses only (every "
              "frame unverified). A frame the geometry contradicts is 'failed' and no pose is published for it.",
              choices=VERIFY_MODES, read_only=True),
    ParamSpec("allow_unverified", False, "Also act on unverified (learned-only) poses: TF correction, "
              "kidnapped-robot re-initialisation on /initialpose and ~/relocalize answers. Off by default: a "
              "confident but wrong pose sent to Nav2 is the worst this node can do. Unverified poses are published "
              "on ~/pose either way; failed ones never."),
    ParamSpec("initialpose.enabled", False, "Kidnapped-robot recovery: publish the visual pose on "
              "initialpose.topic when it disagrees with the robot's belief (map -> base_frame from TF) for "
              "initialpose.consecutive confident frames. Needs publish_tf false when AMCL owns map -> odom."),
    ParamSpec("initialpose.topic", "/initialpose", "Where re-initialisations (and ~/relocalize results) are "
              "published, as geometry_msgs/PoseWithCovarianceStamped (Nav2 AMCL listens on /initialpose)."),
    ParamSpec("initialpose.consecutive", 3, "Confident disagreeing frames in a row before re-initialising.",
              min=1, max=1000),
    ParamSpec("initialpose.gate_probability", 0.999, "Chi-square gate on the disagreement under both "
              "covariances (probability that a true match passes).", min=0.5, max=0.999999),
    ParamSpec("initialpose.min_translation_m", 0.5, "A disagreement must also exceed this distance (or "
              "initialpose.min_rotation_deg), so small mismatches never re-initialise.", min=0.0, max=1000.0),
    ParamSpec("initialpose.min_rotation_deg", 15.0, "... or this rotation, in degrees.", min=0.0, max=180.0),
    ParamSpec("initialpose.planar", True, "Compare (x, y, yaw) only, as a ground robot under AMCL; false: all "
              "six degrees of freedom."),
    ParamSpec("initialpose.min_interval_s", 10.0, "Least time between two re-initialisations (image stamps), in "
              "seconds.", min=0.0, max=1.0e6),
    ParamSpec("initialpose.reinit_without_belief", True, "Re-initialise when there is no belief at all (no map -> "
              "base_frame TF yet: the robot was never localised)."),
    ParamSpec("initialpose.belief_pose_topic", "/amcl_pose", "PoseWithCovarianceStamped giving the belief's "
              "covariance (AMCL's amcl_pose); when none arrived within 5 s of the image, "
              "initialpose.belief_std_m / belief_std_rad are used. '' = always use those."),
    ParamSpec("initialpose.belief_pose_durability", "transient_local", "QoS durability of the belief_pose_topic "
              "subscription: transient_local also receives the last pose published before the node started (AMCL "
              "publishes amcl_pose transient-local); volatile for a volatile publisher, which a transient_local "
              "subscription does not hear.", choices=("transient_local", "volatile")),
    ParamSpec("initialpose.belief_std_m", 0.5, "Position standard deviation assumed for the belief without "
              "belief_pose_topic, in metres.", min=0.0, max=1000.0),
    ParamSpec("initialpose.belief_std_rad", 0.2, "Rotation standard deviation assumed for the belief without "
              "belief_pose_topic, in radians.", min=0.0, max=3.15),
    ParamSpec("oneshot.frames", 5, "The ~/relocalize service (std_srvs/Trigger) answers with the best of this "
              "many frames.", min=1, max=1000),
    ParamSpec("oneshot.timeout_s", 10.0, "How long ~/relocalize waits for oneshot.frames frames, in seconds.",
              min=0.1, max=3600.0),
    ParamSpec("autostart", True, "Configure and activate on start-up (so ros2 launch alone brings the node up); "
              "false: wait for a lifecycle manager (e.g. nav2_lifecycle_manager).", read_only=True),
    ParamSpec(DIAGNOSTICS_PERIOD_PARAM, 1.0, "Period of the /diagnostics statuses, in seconds (diagnostic_updater's "
              "own parameter; read at start-up).", min=0.1, max=60.0, read_only=True),
    ParamSpec("diagnostics.min_rate_hz", 0.0, "Least rate of relocalized frames (by the wall clock) the 'relocalized "
              "frames' status of /diagnostics accepts before it warns (diagnostic_updater's FrequencyStatus: 10 % "
              "tolerance, a window of 5 periods); 0: it only reports an error when no frame at all was relocalized "
              "in the window.", min=0.0, max=1000.0),
    ParamSpec("bond_heartbeat_period", 0.1, "Seconds between the heartbeats of the bond with a Nav2 lifecycle "
              "manager (needs the bondpy package), formed on activate and broken on deactivate as Nav2's own "
              "nodes do; 0: no bond (no lifecycle manager drives the node).", min=0.0, max=10.0),
)
"""Parameters of ``relocalization_node`` (defaults: ``config/relocalize.yaml``). All are read at configure."""


def params_markdown(specs: Sequence[ParamSpec]) -> str:
    """Return a markdown table of the parameters (what config/README.md shows)."""
    def cell(v: Any) -> str:
        if isinstance(v, bool):
            return "`true`" if v else "`false`"
        if isinstance(v, str):
            return f"`'{v}'`" if v == "" else f"`{v}`"
        if isinstance(v, tuple):
            return "`[" + ", ".join(map(str, v)) + "]`"
        return f"`{v}`"

    rows = ["| parameter | type | default | constraints | description |", "| --- | --- | --- | --- | --- |"]
    for s in specs:
        rows.append(f"| `{s.name}` | {s.kind} | {cell(s.default)} | {s.constraints or ''} | "
                    f"{s.description.replace('|', '/')} |")
    return "\n".join(rows) + "\n"


# --------------------------------------------------------------------------
# relocalization_node
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class RelocalizationOptions:
    """What the relocalization node's parameters mean, checked.

    ``relocalizer_kwargs`` go to :class:`~reloc_ros.runtime.engine.Relocalizer`;
    frames left '' are filled by the node from the model / image headers.
    """

    relocalizer_kwargs: dict
    recovery: RecoveryConfig
    oneshot_frames: int
    oneshot_timeout_s: float
    image_transport: str
    map_frame: str
    odom_frame: str
    base_frame: str
    camera_frame: str
    publish_tf: bool
    transform_tolerance_s: float
    tf_rebroadcast_hz: float
    tf_timeout_s: float
    max_rate_hz: float
    min_confidence: float
    allow_unverified: bool
    initialpose_topic: str
    belief_pose_topic: str
    belief_pose_transient_local: bool
    belief_std: tuple[float, float]
    autostart: bool
    diagnostics_period_s: float
    diagnostics_min_rate_hz: float
    bond_heartbeat_period_s: float
    values: dict = field(default_factory=dict, repr=False)

    @property
    def recovery_enabled(self) -> bool:
        """Whether kidnapped-robot recovery (``initialpose.enabled``) is on."""
        return self.recovery.enabled

    @property
    def min_period_ns(self) -> int:
        """Least image-stamp spacing accepted (0: no limit)."""
        return int(round(1e9 / self.max_rate_hz)) if self.max_rate_hz > 0 else 0

    def acts_on(self, status: str) -> bool:
        """Whether a frame of this status may move the robot's belief (TF, /initialpose, ~/relocalize)."""
        return acts_on(status, self.allow_unverified)


# ROS parameter -> RecoveryConfig field.
_RECOVERY_FIELDS = {
    "initialpose.enabled": "enabled",
    "initialpose.consecutive": "consecutive",
    "min_confidence": "min_confidence",
    "initialpose.gate_probability": "gate_probability",
    "initialpose.min_translation_m": "min_translation_m",
    "initialpose.min_rotation_deg": "min_rotation_deg",
    "initialpose.planar": "planar",
    "initialpose.min_interval_s": "min_interval_s",
    "initialpose.reinit_without_belief": "reinit_without_belief",
}


def _check_frame(name: str, value: str, allow_empty: bool) -> str:
    if not value and not allow_empty:
        raise ValueError(f"parameter '{name}' must not be empty: give a frame id such as 'base_link'")
    if value.startswith("/"):
        raise ValueError(f"parameter '{name}' = '{value}' is invalid: tf2 frame ids have no leading slash "
                         f"(use '{value.lstrip('/')}')")
    if any(c.isspace() for c in value):
        raise ValueError(f"parameter '{name}' = '{value}' is invalid: frame ids contain no whitespace")
    return value


def _check_topic(name: str, value: str, allow_empty: bool) -> str:
    if not value and not allow_empty:
        raise ValueError(f"parameter '{name}' must not be empty: give a topic such as '/initialpose'")
    if value and not re.fullmatch(r"[~/]?[A-Za-z_{][A-Za-z0-9_/{}~]*", value):
        raise ValueError(f"parameter '{name}' = '{value}' is not a valid ROS topic name (letters, digits, _ "
                         f"and /, not starting with a digit)")
    return value


def relocalization_options(values: Mapping[str, Any]) -> RelocalizationOptions:
    """Turn the relocalization node's parameter values into checked options.

    ``values`` maps parameter names (:data:`RELOCALIZATION_PARAMS`) to values;
    missing ones take their defaults. Raises ``ValueError`` naming the bad
    parameter and what would be valid. Does not load the model (the file is
    only checked to exist).
    """
    v = check_values(RELOCALIZATION_PARAMS, values)
    model_path = v["model_path"].strip()
    if not model_path:
        raise ValueError("parameter 'model_path' is empty: set it to an exported reloc_ros model file (.pt or "
                         ".onnx), e.g. 'ros2 launch reloc_ros relocalize.launch.py model:=/path/to/model.pt' or "
                         "'--ros-args -p model_path:=/path/to/model.pt'")
    path = Path(model_path).expanduser()
    if not path.is_file():
        raise ValueError(f"parameter 'model_path' = '{model_path}': no such file (train one with "
                         f"'reloc-ros train' or the trainer_node)")
    if v["backend"] == "onnx" and path.suffix.lower() != ".onnx":
        raise ValueError(f"parameter 'backend' = 'onnx' but model_path '{model_path}' is not an .onnx file; "
                         f"use backend auto or torchscript, or the model's .onnx export")
    samples = v["mc_samples"]
    if samples == 1:
        raise ValueError("parameter 'mc_samples' = 1 is invalid: must be 0 (the model's calibrated value) or "
                         ">= 2 (a covariance needs at least two samples)")
    for name in ("map_frame", "odom_frame", "camera_frame"):
        _check_frame(name, v[name], allow_empty=True)
    _check_frame("base_frame", v["base_frame"], allow_empty=False)
    if v["odom_frame"] and v["odom_frame"] == v["base_frame"]:
        raise ValueError(f"parameters 'odom_frame' and 'base_frame' are both '{v['base_frame']}'; use "
                         f"odom_frame '' if the robot has no odom frame")
    if v["map_frame"] and v["map_frame"] in (v["odom_frame"], v["base_frame"]):
        raise ValueError(f"parameter 'map_frame' = '{v['map_frame']}' equals odom_frame or base_frame; "
                         f"the map frame must be a different frame")
    _check_topic("initialpose.topic", v["initialpose.topic"], allow_empty=False)
    _check_topic("initialpose.belief_pose_topic", v["initialpose.belief_pose_topic"], allow_empty=True)

    rec_kwargs = {field_name: v[param] for param, field_name in _RECOVERY_FIELDS.items()}
    try:
        recovery = RecoveryConfig(**rec_kwargs)
    except ValueError as exc:
        # Name the ROS parameter, not the dataclass field.
        msg = str(exc)
        for param, field_name in _RECOVERY_FIELDS.items():
            if f"RecoveryConfig.{field_name} " in msg:
                raise ValueError(f"parameter '{param}' is invalid: {msg.split(' ', 1)[1]}") from None
        raise ValueError(f"initialpose parameters are invalid: {msg}") from None

    relocalizer_kwargs = {
        "model_path": str(path),
        "device": v["device"],
        "backend": v["backend"],
        "samples": samples or None,
        "tolerance": (v["confidence_tolerance_m"], v["confidence_tolerance_deg"]),
        "hypotheses": v["hypotheses"],
        "threads": v["cpu_threads"] or None,
        "verify": v["verify"],
    }
    return RelocalizationOptions(
        relocalizer_kwargs=relocalizer_kwargs, recovery=recovery,
        oneshot_frames=v["oneshot.frames"], oneshot_timeout_s=v["oneshot.timeout_s"],
        image_transport=v["image_transport"], map_frame=v["map_frame"], odom_frame=v["odom_frame"],
        base_frame=v["base_frame"], camera_frame=v["camera_frame"], publish_tf=v["publish_tf"],
        transform_tolerance_s=v["transform_tolerance_s"], tf_rebroadcast_hz=v["tf_rebroadcast_hz"],
        tf_timeout_s=v["tf_timeout_s"], max_rate_hz=v["max_rate_hz"], min_confidence=v["min_confidence"],
        allow_unverified=v["allow_unverified"],
        initialpose_topic=v["initialpose.topic"], belief_pose_topic=v["initialpose.belief_pose_topic"],
        belief_pose_transient_local=v["initialpose.belief_pose_durability"] == "transient_local",
        belief_std=(v["initialpose.belief_std_m"], v["initialpose.belief_std_rad"]),
        autostart=v["autostart"], diagnostics_period_s=v[DIAGNOSTICS_PERIOD_PARAM],
        diagnostics_min_rate_hz=v["diagnostics.min_rate_hz"],
        bond_heartbeat_period_s=v["bond_heartbeat_period"], values=v)
