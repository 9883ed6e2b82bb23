"""Where and how tensors run: the device and precision grammar, distributed setup, batching,
and the one training step and evaluation loop that the trainer, bench and checks share."""
