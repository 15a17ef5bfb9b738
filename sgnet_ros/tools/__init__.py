"""Programs run on a desk beside the node: sgnet-bag (bags from videos, folders, YouTube-VIS sets), sgnet-replay
(a bag through the running node, scored), sgnet-node-bench and its multi-camera part, sgnet-demo, the marker views.
The node's runtime never imports them."""
