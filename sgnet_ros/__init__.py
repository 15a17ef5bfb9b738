"""SG-Net for ROS 2: the lifecycle node, message conversions and the node benchmark.

The generated message module ``sgnet_ros.msg`` belongs to this same package name. In a colcon install both
live in one folder. In the development virtual environment, where this package is installed editable from
the source tree, scripts/build_msgs.sh installs the generated part outside sys.path and names that folder in
site-packages/sgnet_ros.pkg; ``pkgutil.extend_path`` below adds it to this package's path (it reads such .pkg
files), so ``from sgnet_ros.msg import InstanceArray`` works in both layouts.
"""
import pkgutil

__path__ = pkgutil.extend_path(__path__, __name__)
