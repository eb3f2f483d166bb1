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

"""trainer_node: train and export a model from mapping bags, as a ROS 2 node.

Reads its parameters (``config/train.yaml``, :data:`~reloc_ros.training.node_params.TRAINER_PARAMS`),
runs :func:`reloc_ros.training.trainer.train` (the trainer of ``reloc-ros
train``) on a background thread, forwards the trainer's log (one line per
epoch) to the node's logger, publishes its progress on ``/diagnostics`` every
second and exits when training ends: exit code 0 once the model file is
written (atomically, by the trainer), 1 on failure with the error logged, 3
when the model is weak (no better than the mean mapping pose; written all the
same, accepted with ``allow_weak:=true``), 130 on Ctrl-C (the checkpoint of
the last finished epoch stays: relaunch with ``resume:=true``).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

from reloc_ros import conversions as conv
from reloc_ros.errors import RelocError
from reloc_ros.mapping.mapper import build_model_map, check_camera_info, describe_map
from reloc_ros.nodes.ros_params import declare_specs, read_specs
from reloc_ros.runtime.log_bridge import attach_core_logging, detach_core_logging
from reloc_ros.training.node_params import TRAINER_PARAMS, TrainerOptions, parse_epoch_line, trainer_options
# Imported before the node attaches its log handler (see attach_core_logging); pulls in torch.
from reloc_ros.training.trainer import EXIT_WEAK, train, weak_model_refusal

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


class TrainerNode(Node):
    """Plain node that trains one model; see the module docstring."""

    def __init__(self, node_name: str = "trainer", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._types = conv.ros_message_types()
        self._param_errors = declare_specs(self, TRAINER_PARAMS)
        self._log_state = attach_core_logging(self.get_logger())
        self._log_state[0].listeners.append(self._on_core_log)
        self._lock = threading.Lock()
        self._state = "starting"
        self._message = "reading parameters"
        self._progress: dict[str, Any] = {}
        self._t0 = time.monotonic()
        self._opts: TrainerOptions | None = None
        self._thread: threading.Thread | None = None
        self.exit_code: int | None = None
        self._pub = self.create_publisher(self._types["diagnostic_msgs/msg/DiagnosticArray"], "/diagnostics", 10)
        self._timer = self.create_timer(1.0, self.publish_diagnostics)

    @property
    def finished(self) -> bool:
        """Whether training has ended (successfully or not)."""
        return self.exit_code is not None

    def start(self) -> bool:
        """Check the parameters and start training on a background thread; False (and logged) if they are bad."""
        log = self.get_logger()
        if self._param_errors:
            for err in self._param_errors.values():
                log.error(err)
            self._finish("failed", EXIT_FAILED, "; ".join(self._param_errors.values()))
            return False
        try:
            opts = trainer_options(read_specs(self, TRAINER_PARAMS))
        except (ValueError, RelocError) as exc:
            log.error(f"cannot start training: {exc}")
            self._finish("failed", EXIT_FAILED, str(exc))
            return False
        self._opts = opts
        cfg = opts.config
        log.info(f"training {cfg.model} ({cfg.backbone}, {cfg.input_size[0]}x{cfg.input_size[1]}, {cfg.epochs} "
                 f"epochs) on {', '.join(map(str, opts.bags))} -> {opts.out}{' (resuming)' if opts.resume else ''}")
        with self._lock:
            self._state, self._message = "running", "loading bags"
            self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, args=(opts,), name="reloc_ros-train", daemon=True)
        self._thread.start()
        return True

    def _run(self, opts: TrainerOptions) -> None:
        try:
            if opts.map_config is not None:  # before training: a map that cannot be built is said now
                check_camera_info(list(opts.bags), opts.source.image_topic)
            result = train(list(opts.bags), opts.source, opts.config, opts.out, resume=opts.resume,
                           cache_dir=opts.cache_dir, device=opts.device, progress=False, onnx=opts.onnx)
            if opts.map_config is not None:
                entry = build_model_map(opts.out, list(opts.bags), opts.source, opts.map_config, progress=False)
                self.get_logger().info(describe_map(entry, opts.out))
        except (ValueError, RelocError) as exc:
            self.get_logger().error(f"training failed: {exc}")
            self._finish("failed", EXIT_FAILED, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - reported, and the node exits with 1
            logging.getLogger("reloc_ros.nodes.trainer_node").exception("training failed")
            self._finish("failed", EXIT_FAILED, f"{type(exc).__name__}: {exc}")
            return
        v, b = result.val_metrics or {}, result.baseline or {}
        message = f"wrote {result.model_path}"
        if "median_translation_m" in v:
            message += (f": validation median {v['median_translation_m']:.3f} m, {v['median_rotation_deg']:.2f} deg")
        if "median_translation_m" in b:
            message += (f" (mean-pose baseline {b['median_translation_m']:.3f} m, "
                        f"{b['median_rotation_deg']:.2f} deg)")
        refusal = weak_model_refusal(result, opts.allow_weak)
        if refusal:
            self.get_logger().error(refusal)
            self._finish("weak model", EXIT_WEAK, refusal)
            return
        self.get_logger().info(f"training done: {message}")
        self._finish("done", EXIT_OK, message)

    def _finish(self, state: str, code: int, message: str) -> None:
        with self._lock:
            self._state, self._message = state, message
        self.exit_code = code

    def _on_core_log(self, record: logging.LogRecord, text: str) -> None:
        """Keep the last epoch summary of the trainer for /diagnostics."""
        if not record.name.startswith("reloc_ros.training"):
            return
        epoch = parse_epoch_line(text)
        with self._lock:
            if epoch is not None:
                self._progress = epoch
                self._message = text
            elif self._state == "running":
                self._message = text

    def publish_diagnostics(self) -> None:
        """Publish the training state on /diagnostics (every second, and once at the end)."""
        with self._lock:
            state, message, progress = self._state, self._message, dict(self._progress)
            elapsed = time.monotonic() - self._t0
        level = "ERROR" if state in ("failed", "weak model") else "OK"
        cfg = self._opts.config if self._opts is not None else None
        values: dict[str, Any] = {"state": state, "elapsed (s)": float(elapsed)}
        if progress:
            values.update({"epoch": f"{progress['epoch']}/{progress['epochs']}", "loss": progress["loss"],
                           "val median (m)": progress["val_m"], "val median (deg)": progress["val_deg"]})
        else:
            values["epoch"] = f"0/{cfg.epochs}" if cfg is not None else "n/a"
        if self._opts is not None:
            values["output"] = str(self._opts.out)
            values["bags"] = ", ".join(map(str, self._opts.bags))
        stamp = max(int(self.get_clock().now().nanoseconds), 0)
        self._pub.publish(conv.make_diagnostic_array(self._types, stamp, f"trainer: {self.get_name()}", level,
                                                     f"{state}: {message}", values))

    def destroy_node(self) -> None:
        """Detach the core's logging, then destroy the node (a running training thread is left to the process)."""
        if self._log_state is not None:
            detach_core_logging(self._log_state)
            self._log_state = None
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Train as the parameters say; return the exit code (0 done, 1 failed, 130 interrupted)."""
    rclpy.init(args=args)
    node = None
    code = EXIT_FAILED
    try:
        node = TrainerNode()
        if node.start():
            while rclpy.ok() and not node.finished:
                rclpy.spin_once(node, timeout_sec=0.2)
        node.publish_diagnostics()  # the final state
        code = node.exit_code if node.exit_code is not None else EXIT_FAILED
    except (KeyboardInterrupt, ExternalShutdownException):
        code = EXIT_INTERRUPTED
        if node is not None and node._opts is not None:
            node.get_logger().warning(f"interrupted: the checkpoint of the last finished epoch is "
                                      f"{node._opts.out}.ckpt; relaunch with resume:=true to continue")
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
