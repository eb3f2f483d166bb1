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

"""Install reloc_ros with colcon (ament_python) on ROS 2, or with pip without ROS."""

from glob import glob

from setuptools import find_packages, setup

package_name = 'reloc_ros'
# Keep equal to <version> in package.xml (checked by test/test_package.py).
version = '0.1.0'

setup(
    name=package_name,
    version=version,
    packages=find_packages(exclude=['test', 'test.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', glob('launch/*.launch.py')),
        ('share/' + package_name + '/config', glob('config/*.yaml') + glob('config/*.rviz')),
        ('share/' + package_name + '/models', glob('models/*')),
    ],
    python_requires='>=3.10',
    # rosbags reads and writes bags without ROS; rclpy comes from the ROS
    # installation (package.xml), never from pip.
    # pycolmap: robust absolute pose (LO-RANSAC) and its refinement for the geometric verification;
    # tested with 4.2.1, the API of cam_from_world / Rigid3d it uses is 4.x's.
    install_requires=[
        'numpy', 'scipy', 'opencv-python-headless', 'rosbags>=0.10', 'tqdm', 'matplotlib',
        'pyyaml', 'pycolmap>=4.2',
    ],
    # torch: training and TorchScript models (install the build your machine needs, see the README);
    # onnx: ONNX export, onnxruntime: running .onnx models (no torch needed);
    # test: what 'colcon test' and 'pytest' need (setuptools >= 72 ignores tests_require).
    extras_require={
        'torch': ['torch'],
        'onnx': ['onnx', 'onnxruntime'],
        'test': ['pytest'],
    },
    zip_safe=True,
    maintainer='reloc_ros maintainers',
    maintainer_email='maintainers@reloc-ros.dev',
    description='Learned visual relocalization for ROS 2',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'reloc-ros = reloc_ros.cli:main',
            'relocalization_node = reloc_ros.nodes.relocalization_node:main',
            'trainer_node = reloc_ros.nodes.trainer_node:main',
        ],
    },
)
