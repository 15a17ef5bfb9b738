"""Benchmarks: sgnet-bench (the predictor per frame), sgnet-train-bench (training steps), sgnet-peer-bench (SG-Net
against a Mask R-CNN peer with an IoU tracker on the demo's data)."""
