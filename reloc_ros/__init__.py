"""reloc_ros: learned visual relocalization for ROS 2.

Everything in this package except ``reloc_ros.nodes`` runs without ROS.
"""

__version__ = "0.1.0"
