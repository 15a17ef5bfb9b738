"""From the network's outputs to tracked instances: detection selection, mask blending and pasting, and the centre
tracker."""
