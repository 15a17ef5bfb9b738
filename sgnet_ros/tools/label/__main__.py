"""``python -m sgnet_ros.tools.label``: the sgnet-label command line."""
import sys

from sgnet_ros.tools.label.cli import main

sys.exit(main())
