"""``python -m sgnet_ros.tools.node_bench``: the sgnet-node-bench command line."""
import sys

from sgnet_ros.tools.node_bench.cli import main

sys.exit(main())
