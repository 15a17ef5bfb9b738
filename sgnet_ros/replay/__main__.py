"""``python -m sgnet_ros.replay``: the sgnet-replay command line."""
import sys

from sgnet_ros.replay.cli import main

sys.exit(main())
