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

"""Launch the relocalization node beside Nav2's localization, under its own Nav2 lifecycle manager.

    ros2 launch nav2_bringup localization_launch.py map:=lab.yaml     # AMCL, map server (Nav2's own)
    ros2 launch reloc_ros nav2_relocalization.launch.py model:=lab.pt image_topic:=/camera/image_raw

AMCL keeps map -> odom; the node (publish_tf false, initialpose enabled, see
config/nav2_relocalization.yaml) compares its verified poses with AMCL's
belief and re-initialises AMCL through /initialpose when the robot is lost.
lifecycle_manager_relocalization configures and activates the node and
holds a bond with it (the node needs the bondpy package for that), so a
crashed node is noticed as Nav2's own servers are.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, GroupAction, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PythonExpression
from launch_ros.actions import Node

# Passed through to relocalize.launch.py as they are.
FORWARDED = ('model', 'image_topic', 'camera_info_topic', 'params_file', 'namespace', 'use_sim_time', 'log_level')


def generate_launch_description():
    """Declare the arguments; include relocalize.launch.py (autostart false) and add the lifecycle manager."""
    share = get_package_share_directory('reloc_ros')
    # Scoped: an include's launch_arguments stay set after it, so without the group its autostart 'false' would
    # also become the manager's autostart below, and nothing would bring the node up.
    relocalize = GroupAction([IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(share, 'launch', 'relocalize.launch.py')),
        launch_arguments=[(name, LaunchConfiguration(name)) for name in FORWARDED] + [('autostart', 'false')],
    )], scoped=True)
    manager = Node(
        package='nav2_lifecycle_manager',
        executable='lifecycle_manager',
        name='lifecycle_manager_relocalization',
        namespace=LaunchConfiguration('namespace'),
        output='screen',
        parameters=[{
            'use_sim_time': PythonExpression(["'", LaunchConfiguration('use_sim_time'), "'.lower() == 'true'"]),
            'autostart': PythonExpression(["'", LaunchConfiguration('autostart'), "'.lower() == 'true'"]),
            'node_names': ['relocalization'],
            'bond_timeout': 4.0,
        }],
    )
    return LaunchDescription([
        DeclareLaunchArgument(
            'model', default_value='',
            description='Exported reloc_ros model file (.pt or .onnx) with its feature map'),
        DeclareLaunchArgument(
            'image_topic', default_value='/camera/image_raw',
            description='Camera image topic (sensor_msgs/Image)'),
        DeclareLaunchArgument(
            'camera_info_topic', default_value='',
            description="CameraInfo topic of the images; empty: the image topic's sibling camera_info"),
        DeclareLaunchArgument(
            'params_file', default_value=os.path.join(share, 'config', 'nav2_relocalization.yaml'),
            description='Parameters for use beside Nav2 (publish_tf false, /initialpose on, base_frame); '
                        'parameters it does not set keep their defaults (config/relocalize.yaml)'),
        DeclareLaunchArgument(
            'namespace', default_value='',
            description="Top-level namespace, as given to Nav2's bringup"),
        DeclareLaunchArgument(
            'use_sim_time', default_value='false',
            description='Use simulation (/clock) time'),
        DeclareLaunchArgument(
            'autostart', default_value='true',
            description='Let the lifecycle manager configure and activate the node at start-up'),
        DeclareLaunchArgument(
            'log_level', default_value='info',
            description='Log level of the relocalization node'),
        relocalize,
        manager,
    ])
