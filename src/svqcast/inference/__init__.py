"""Inference: forecasts from a trained checkpoint.

:mod:`.forecast` holds :func:`~svqcast.inference.forecast.forecast` (``svqcast.forecast``)
and :func:`~svqcast.inference.forecast.load_module`; :mod:`.predict` the file input and
output of ``svqcast predict``.
"""
