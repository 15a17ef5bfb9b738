"""Training and evaluation of SG-Net: YouTube-VIS and synthetic data, sgnet-train, sgnet-eval and benchmarks."""
