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
node_names ['relocalization']) brings the node up instead. The camera's
CameraInfo (intrinsics for the geometric verification) is read from the
image topic's sibling camera_info unless camera_info_topic:= says otherwise.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue


def _is_true(text):
    return text.strip().lower() in ('true', '1', 'yes', 'on')


def _bool_or_text(text):
    """'true'/'false' (and 1/0, yes/no, on/off) as a bool; anything else as given, for the node to refuse."""
    word = text.strip().lower()
    if word in ('true', '1', 'yes', 'on'):
        return True
    if word in ('false', '0', 'no', 'off'):
        return False
    return text


def _sibling_camera_info(image_topic):
    """Return the camera_info topic next to an image topic: /camera/image_raw -> /camera/camera_info."""
    topic = image_topic.strip().rstrip('/')
    if '/' not in topic:
        return 'camera_info'
    parent = topic.rsplit('/', 1)[0]
    return parent + '/camera_info' if parent else '/camera_info'


def _launch_setup(context, *args, **kwargs):
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    image_topic = arg('image_topic')
    camera_info_topic = arg('camera_info_topic') or _sibling_camera_info(image_topic)
    overrides = {
        'use_sim_time': _is_true(arg('use_sim_time')),
        'autostart': _is_true(arg('autostart')),
        'device': arg('device'),
    }
    # An empty model / verify / allow_unverified argument leaves the parameter to the params file.
    if arg('model'):
        overrides['model_path'] = arg('model')
    if arg('verify'):
        # Typed str: launch would otherwise read 'on' / 'off' as YAML booleans.
        overrides['verify'] = ParameterValue(arg('verify').strip(), value_type=str)
    if arg('allow_unverified'):
        overrides['allow_unverified'] = _bool_or_text(arg('allow_unverified'))
    nodes = [Node(
        package='reloc_ros',
        executable='relocalization_node',
        name='relocalization',
        namespace=arg('namespace'),
        output='screen',
        parameters=[arg('params_file'), overrides],
        remappings=[('image', image_topic), ('image/compressed', image_topic.rstrip('/') + '/compressed'),
                    ('camera_info', camera_info_topic)],
        arguments=['--ros-args', '--log-level', arg('log_level')],
    )]
    if _is_true(arg('rviz')):  # needs rviz2 (ros-$ROS_DISTRO-rviz2); not a dependency of this package
        rviz_config = os.path.join(get_package_share_directory('reloc_ros'), 'config', 'relocalization.rviz')
        nodes.append(Node(package='rviz2', executable='rviz2', name='rviz2', output='screen',
                          arguments=['-d', rviz_config], parameters=[{'use_sim_time': overrides['use_sim_time']}]))
    return nodes


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
            'camera_info_topic', default_value='',
            description='CameraInfo topic of the images (intrinsics for the geometric verification); empty: the '
                        "image topic's sibling, e.g. /camera/camera_info for /camera/image_raw"),
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
        DeclareLaunchArgument(
            'verify', default_value='',
            description="Geometric verification of each pose with the model file's feature map: auto (when the "
                        'model has one), on (configure fails without one) or off; empty: verify of params_file '
                        '(default auto)'),
        DeclareLaunchArgument(
            'allow_unverified', default_value='',
            description='true: also publish the TF correction and /initialpose for unverified (learned-only) '
                        'poses; empty: allow_unverified of params_file (default false)'),
        DeclareLaunchArgument(
            'rviz', default_value='false',
            description='true: also start RViz2 with config/relocalization.rviz (pose with covariance, '
                        'hypotheses, /initialpose, TF, camera image; needs rviz2)'),
        OpaqueFunction(function=_launch_setup),
    ])
