"""The training engine: the LightningModule (:mod:`.module`), checkpoint plumbing
(:mod:`.checkpoints`) and the callbacks the engine needs (:mod:`.callbacks`).

The application around it (``svqcast fit``, run folders) is :mod:`svqcast.commands`;
forecasts from a checkpoint are :mod:`svqcast.inference`.
"""
