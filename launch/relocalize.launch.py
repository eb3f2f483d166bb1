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

"""Launch reloc_ros' relocalization node (a lifecycle node that configures and activates itself by default).

    ros2 launch reloc_ros relocalize.launch.py model:=/path/to/model.pt image_topic:=/camera/image_raw
    ros2 bag play run_bag --clock &
    ros2 launch reloc_ros relocalize.launch.py model:=lab.pt use_sim_time:=true

With autostart:=false a lifecycle manager (e.g. nav2_lifecycle_manager with
node_names ['relocalization']) brings the node up instead.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def _is_true(text):
    return text.strip().lower() in ('true', '1', 'yes', 'on')


def _launch_setup(context, *args, **kwargs):
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    image_topic = arg('image_topic')
    overrides = {
        'use_sim_time': _is_true(arg('use_sim_time')),
        'autostart': _is_true(arg('autostart')),
        'device': arg('device'),
    }
    # An empty model argument leaves model_path to the params file.
    if arg('model'):
        overrides['model_path'] = arg('model')
    return [Node(
        package='reloc_ros',
        executable='relocalization_node',
        name='relocalization',
        namespace=arg('namespace'),
        output='screen',
        parameters=[arg('params_file'), overrides],
        remappings=[('image', image_topic), ('image/compressed', image_topic.rstrip('/') + '/compressed')],
        arguments=['--ros-args', '--log-level', arg('log_level')],
    )]


def generate_launch_description():
    """Declare the arguments and the relocalization node."""
    default_params = os.path.join(get_package_share_directory('reloc_ros'), 'config', 'relocalize.yaml')
    return LaunchDescription([
        DeclareLaunchArgument(
            'model', default_value='',
            description='Exported reloc_ros model file (.pt or .onnx); overrides model_path of params_file'),
        DeclareLaunchArgument(
            'image_topic', default_value='/camera/image_raw',
            description='Camera image topic (sensor_msgs/Image); with image_transport compressed in params_file, '
                        'IMAGE_TOPIC/compressed is used'),
        DeclareLaunchArgument(
            'params_file', default_value=default_params,
            description='Full path to the ROS 2 parameters file of the relocalization node'),
        DeclareLaunchArgument(
            'namespace', default_value='',
            description='Top-level namespace (topics and the node go under it)'),
        DeclareLaunchArgument(
            'use_sim_time', default_value='false',
            description='Use simulation (/clock) time, e.g. with ros2 bag play --clock'),
        DeclareLaunchArgument(
            'log_level', default_value='info',
            description='Log level: debug, info, warn, error or fatal'),
        DeclareLaunchArgument(
            'autostart', default_value='true',
            description='Configure and activate the node on start-up; false: a lifecycle manager does it'),
        DeclareLaunchArgument(
            'device', default_value='auto',
            description='Inference device: auto, cpu, cuda or cuda:N'),
        OpaqueFunction(function=_launch_setup),
    ])
