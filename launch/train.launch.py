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

"""Launch reloc_ros' trainer node; the launch ends when training ends.

    ros2 launch reloc_ros train.launch.py bags:=/data/map_a,/data/map_b output:=/data/lab.pt

Training options beyond the arguments go in params_file (config/train.yaml
lists them) or in the YAML file its config_file parameter names.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, RegisterEventHandler, Shutdown
from launch.event_handlers import OnProcessExit
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def _launch_setup(context, *args, **kwargs):
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    overrides = {'use_sim_time': arg('use_sim_time').strip().lower() in ('true', '1', 'yes', 'on')}
    # Empty arguments leave the value to params_file.
    bags = [b.strip() for b in arg('bags').split(',') if b.strip()]
    if bags:
        overrides['bags'] = bags
    for name, param in (('output', 'output'), ('image_topic', 'image_topic')):
        if arg(name):
            overrides[param] = arg(name)
    trainer = Node(
        package='reloc_ros',
        executable='trainer_node',
        name='trainer',
        output='screen',
        parameters=[arg('params_file'), overrides],
        arguments=['--ros-args', '--log-level', arg('log_level')],
    )
    return [
        trainer,
        RegisterEventHandler(OnProcessExit(
            target_action=trainer,
            on_exit=[Shutdown(reason='trainer_node exited (training done or failed)')])),
    ]


def generate_launch_description():
    """Declare the arguments, the trainer node and the shutdown when it exits."""
    default_params = os.path.join(get_package_share_directory('reloc_ros'), 'config', 'train.yaml')
    return LaunchDescription([
        DeclareLaunchArgument(
            'bags', default_value='',
            description='Mapping bag(s), comma-separated (rosbag2 directories, .mcap/.db3 files or ROS 1 .bag)'),
        DeclareLaunchArgument(
            'output', default_value='',
            description='Model file to write (.pt); its checkpoint is OUTPUT.ckpt'),
        DeclareLaunchArgument(
            'image_topic', default_value='',
            description="Colour image topic in the bags ('' = the bags' only colour image topic)"),
        DeclareLaunchArgument(
            'params_file', default_value=default_params,
            description='Full path to the ROS 2 parameters file of the trainer node'),
        DeclareLaunchArgument(
            'use_sim_time', default_value='false',
            description='Use simulation (/clock) time (only stamps the diagnostics)'),
        DeclareLaunchArgument(
            'log_level', default_value='info',
            description='Log level: debug, info, warn, error or fatal'),
        OpaqueFunction(function=_launch_setup),
    ])
