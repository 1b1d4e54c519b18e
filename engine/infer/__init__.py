"""Inference: export a lab model (or its attention core) to ONNX, run it on one of several backends
(PyTorch, onnxruntime on CPU/CUDA/TensorRT, native TensorRT), generate and classify with a KV cache,
benchmark backends side by side, and calibrate the serving estimator against this machine."""
