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

"""The bond a Nav2 lifecycle manager expects from a node it brings up. ROS-free.

``nav2_lifecycle_manager`` activates each node of its ``node_names`` and then
waits for a bond (``bond/msg/Status`` heartbeats on the topic ``bond``, id =
the node's name); a node that never forms one aborts the whole bring-up
("Server ... was unable to be reached after ...s by bond"). Nav2's own nodes
create the bond when they activate and destroy it when they deactivate, with
a heartbeat period from their ``bond_heartbeat_period`` parameter (0
disables it) and a 4 s heartbeat timeout. :class:`LifecycleBond` does the
same with whatever bond class it is given: ``bondpy.bondpy.Bond`` in the node
(ROS 2's ``bondpy`` package), a fake in the tests.
"""

from __future__ import annotations

from typing import Any, Callable

TOPIC = "bond"
"""The topic Nav2's lifecycle manager and nodes exchange bond heartbeats on (relative: the node's namespace)."""
HEARTBEAT_TIMEOUT_S = 4.0
"""The heartbeat timeout a Nav2 node sets on its side of the bond."""


class LifecycleBond:
    """Form the bond on activate, break it on deactivate, as a Nav2 lifecycle node does.

    Args:
        bond_class: ``Bond(node, topic, bond_id)`` with ``heartbeat_period``,
            ``heartbeat_timeout``, ``start()`` and ``shutdown()`` (bondpy's
            API), or None when bondpy is not installed.
        node: the ROS node the bond publishes and subscribes with.
        node_name: the bond id: the node's name, as the manager's ``node_names`` lists it.
        heartbeat_period_s: seconds between heartbeats; 0 means no bond.
        warn: where to say what is wrong (e.g. the node logger's ``warning``).
    """

    def __init__(self, bond_class: Callable[..., Any] | None, node: Any, node_name: str,
                 heartbeat_period_s: float, warn: Callable[[str], None]) -> None:
        self._bond_class, self._node, self._name = bond_class, node, node_name
        self._period = float(heartbeat_period_s)
        self._warn = warn
        self._bond: Any = None

    @property
    def formed(self) -> bool:
        """Whether a bond is running (started and not yet shut down)."""
        return self._bond is not None

    def start(self) -> bool:
        """Start the bond (activate); return whether one runs. Without bondpy, warn what that breaks."""
        if self._period <= 0.0 or self._bond is not None:
            return self._bond is not None
        if self._bond_class is None:
            self._warn("no bond to a lifecycle manager: the bondpy package is not installed (apt: "
                       "ros-$ROS_DISTRO-bondpy). nav2_lifecycle_manager aborts bring-up without a bond; "
                       "install bondpy, or set bond_heartbeat_period: 0.0 when no lifecycle manager drives "
                       "this node")
            return False
        bond = self._bond_class(self._node, TOPIC, self._name)
        bond.heartbeat_period = self._period
        bond.heartbeat_timeout = HEARTBEAT_TIMEOUT_S
        bond.start()
        self._bond = bond
        return True

    def stop(self) -> None:
        """Break the bond (deactivate, cleanup, shutdown); nothing if none runs.

        bondpy's ``shutdown`` destroys the bond's subscription and publisher
        behind the node's back (``sub.destroy()``, ``pub.destroy()``): their
        QoS event handlers stay among the node's waitables, and with Cyclone
        DDS on Humble the executor's next wait raises ``InvalidHandle``, which
        ends ``executor.spin()`` (seen on a real Humble). So the node destroys
        them itself: the subscription before the shutdown, the publisher after
        it has sent the "dead" status that tells the manager. After Ctrl-C the
        ROS context is shut down before the node is destroyed and that status
        cannot be sent (rclpy raises ``RCLError``, a ``RuntimeError``): the
        manager then notices the missing heartbeats, which this says.
        """
        bond, self._bond = self._bond, None
        if bond is None:
            return
        sub = getattr(bond, "sub", None)
        if sub is not None:
            self._node.destroy_subscription(sub)
        try:
            bond.shutdown()
        except RuntimeError as exc:
            self._warn(f"bond '{self._name}' broken without telling the lifecycle manager ({exc}); it notices the "
                       f"missing heartbeats within {HEARTBEAT_TIMEOUT_S:g} s")
        finally:
            pub = getattr(bond, "pub", None)
            if pub is not None:
                self._node.destroy_publisher(pub)
