"""Where an artifact is timed: host ONNX Runtime, local TensorRT, an SSH device, or the cost
model. Sits above backends/, quant/, export/ and latency/, which it combines."""
