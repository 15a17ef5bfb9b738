"""The rosbag2 flavour this package writes (sgnet-bag, the node's recording of uncertain moments) and reads."""
from rosbags.typesys import Stores

# rosbag2 metadata version of the bags written here: 8 is the newest that Humble's `ros2 bag` reads
# (`offered_qos_profiles` as a YAML string); Jazzy and Kilted read it too. rosbags would write 9.
BAG_METADATA_VERSION = 8
ROS_STORE = Stores.ROS2_KILTED
