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

"""The bond with a Nav2 lifecycle manager, against a fake manager side (no ROS needed)."""

from reloc_ros.runtime.lifecycle_bond import HEARTBEAT_TIMEOUT_S, TOPIC, LifecycleBond


class FakeManager:
    """Records the bonds nodes create, as nav2_lifecycle_manager would see them on the bond topic."""

    def __init__(self):
        self.bonds = []

    def bond_class(self, node, topic, bond_id):
        bond = FakeBond(node, topic, bond_id)
        self.bonds.append(bond)
        return bond

    def formed(self, node_name):
        """Whether the manager's waitUntilFormed for node_name would succeed now."""
        return any(b.bond_id == node_name and b.topic == TOPIC and b.started and not b.shut_down for b in self.bonds)


class FakeBond:
    """One side of a bond: records what the node set and did. Like bondpy's, it holds a publisher and a subscription."""

    def __init__(self, node, topic, bond_id):
        self.node, self.topic, self.bond_id = node, topic, bond_id
        self.heartbeat_period = self.heartbeat_timeout = None
        self.started = self.shut_down = False
        self.pub, self.sub = f"pub:{bond_id}", None   # bondpy: publisher in the constructor, subscription in start

    def start(self):
        assert self.heartbeat_period is not None, "the period must be set before start"
        self.sub = f"sub:{self.bond_id}"
        self.started = True

    def shutdown(self):
        if isinstance(self.node, FakeNode):
            self.node.events.append("bond shutdown")
        self.shut_down = True


class FakeNode:
    """Records what is destroyed through the node (which also drops the entity's event handlers from its waitables)."""

    def __init__(self):
        self.events = []

    def destroy_subscription(self, sub):
        self.events.append(f"destroy {sub}")
        return True

    def destroy_publisher(self, pub):
        self.events.append(f"destroy {pub}")
        return True


def test_activate_forms_the_bond_the_manager_waits_for_and_deactivate_breaks_it():
    manager, warnings = FakeManager(), []
    bond = LifecycleBond(manager.bond_class, FakeNode(), "relocalization", 0.1, warnings.append)
    assert not manager.formed("relocalization")
    assert bond.start() and bond.formed and manager.formed("relocalization")
    (b,) = manager.bonds
    assert (b.heartbeat_period, b.heartbeat_timeout) == (0.1, HEARTBEAT_TIMEOUT_S)
    assert bond.start() and len(manager.bonds) == 1  # activating twice keeps the one bond
    bond.stop()
    assert not bond.formed and not manager.formed("relocalization") and b.shut_down
    bond.stop()  # deactivate then cleanup: nothing left to break
    assert bond.start() and manager.formed("relocalization") and len(manager.bonds) == 2  # re-activation
    assert warnings == []


def test_a_zero_period_means_no_bond():
    manager, warnings = FakeManager(), []
    bond = LifecycleBond(manager.bond_class, object(), "relocalization", 0.0, warnings.append)
    assert not bond.start() and manager.bonds == [] and warnings == []


def test_without_bondpy_the_warning_says_what_breaks_and_what_to_do():
    warnings = []
    bond = LifecycleBond(None, object(), "relocalization", 0.1, warnings.append)
    assert not bond.start() and not bond.formed
    (text,) = warnings
    assert "bondpy" in text and "nav2_lifecycle_manager aborts bring-up" in text and "bond_heartbeat_period" in text


def test_stop_hands_the_bonds_publisher_and_subscription_back_to_the_node():
    # bondpy's shutdown destroys them itself, leaving their QoS event handlers among the node's waitables: on Humble
    # the executor's next wait then raises InvalidHandle and spin() ends. The subscription goes first (no more
    # heartbeats heard), the publisher after the shutdown has sent the "dead" status the manager waits for.
    manager, node = FakeManager(), FakeNode()
    bond = LifecycleBond(manager.bond_class, node, "relocalization", 0.1, lambda text: None)
    assert bond.start() and node.events == []
    bond.stop()
    assert node.events == ["destroy sub:relocalization", "bond shutdown", "destroy pub:relocalization"]
    bond.stop()
    assert len(node.events) == 3


def test_a_bond_that_cannot_say_goodbye_is_still_released():
    """After Ctrl-C the context is gone before the node: bondpy's shutdown cannot publish its "dead" status."""
    class ContextGoneBond(FakeBond):
        """bondpy's Bond when the context is shut down: its "dead" status cannot be published."""

        def shutdown(self):
            super().shutdown()
            raise RuntimeError("Failed to publish: publisher's context is invalid")

    node, warnings = FakeNode(), []
    bond = LifecycleBond(ContextGoneBond, node, "relocalization", 0.1, warnings.append)
    assert bond.start()
    bond.stop()
    assert not bond.formed
    assert node.events == ["destroy sub:relocalization", "bond shutdown", "destroy pub:relocalization"]
    (text,) = warnings
    assert "context is invalid" in text and "missing heartbeats within 4 s" in text
