"""Where and how tensors run, shared by the trainer, ``zoo bench`` and ``zoo check``:

- :mod:`zoo.runtime.device`: the one device and precision grammar (light: no torch at import);
- :mod:`zoo.runtime.precision`: :class:`~zoo.runtime.precision.Precision` (autocast, backward,
  optimizer step, GradScaler state);
- :mod:`zoo.runtime.step`: THE training step, the evaluation loop and the prediction loop;
- :mod:`zoo.runtime.batches`: batching in-memory tensors by slicing, ``DataLoader`` otherwise;
- :mod:`zoo.runtime.distributed`: process groups and collectives under ``torchrun``.

Import the submodule you need; this package imports none of them.
"""

__all__: list[str] = []
