"""``python -m sgnet_ros.tools.replay``: the sgnet-replay command line."""
import sys

from sgnet_ros.tools.replay.cli import main

sys.exit(main())
