"""How a frame is run: the fixed-shape frame (network plus post-processing), its export to an ONNX frame graph, and
the backends that run it (torch eager or CUDA graphs, ONNX Runtime, OpenVINO, TensorRT)."""
