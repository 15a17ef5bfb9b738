"""``python -m sgnet_ros.tools.bag``: the sgnet-bag command line."""
import sys

from sgnet_ros.tools.bag.cli import main

sys.exit(main())
