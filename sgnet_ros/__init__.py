"""SG-Net for ROS 2: the lifecycle node and its runtime here; the desk tools (sgnet-bag, sgnet-replay,
sgnet-node-bench, sgnet-demo, the marker views) in ``sgnet_ros.tools``.

The generated message module ``sgnet_ros.msg`` belongs to this same package name. In a colcon install both
live in one folder. In the development virtual environment, where this package is installed editable from
the source tree, scripts/build_msgs.sh installs the generated part outside sys.path and names that folder in
site-packages/sgnet_ros.pkg; ``pkgutil.extend_path`` below adds it to this package's path (it reads such .pkg
files), so ``from sgnet_ros.msg import InstanceArray`` works in both layouts.
"""
import pkgutil

from sgnet_model.moved_modules import register

__path__ = pkgutil.extend_path(__path__, __name__)

# Modules that moved into sgnet_ros.tools (issue 28): the old paths import the new modules, with a warning.
MOVED = {
    "sgnet_ros.bag": "sgnet_ros.tools.bag",
    "sgnet_ros.replay": "sgnet_ros.tools.replay",
    "sgnet_ros.node_bench": "sgnet_ros.tools.node_bench",
    "sgnet_ros.camera_bench": "sgnet_ros.tools.node_bench.cameras",
    "sgnet_ros.demo": "sgnet_ros.tools.demo",
    "sgnet_ros.marker_view": "sgnet_ros.tools.marker_view",
}
register(MOVED)
