"""`edge-sed report`: accuracy and latency per quantization level and device, with plots."""
