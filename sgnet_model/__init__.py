"""SG-Net (Liu et al., "SG-Net: Spatial Granularity Network for One-Stage Video Instance Segmentation")
in pure PyTorch: the network, its losses and targets, the centre tracker and a streaming predictor.

This package never imports ROS or the training code.
"""
