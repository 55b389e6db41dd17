"""Lightning's start-up chatter (log records and warnings) held back until a run starts.

Lightning logs "Seed set to 0", "GPU available: ...", "TPU available: ..." and an
advertisement for its cloud logger while the trainer is built, before the data is loaded. A
command that then fails on the user's data would print those lines above its one-line error.
:func:`held_lightning_logs` keeps Lightning's log records back while a command sets up;
:class:`ReleaseHeldLogs` (a callback) emits them once the fit, validation or test loop
starts; if the command fails before that, they are dropped. The advertisement is always
dropped.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import lightning as L

LOGGERS = ("lightning.pytorch", "lightning.fabric")
_ADVERT = "💡 Tip:"


class _Hold(logging.Handler):
    """Keeps records for the handlers it replaced."""

    def __init__(self, logger: logging.Logger, handlers: list[logging.Handler]) -> None:
        super().__init__()
        self.logger, self.replaced, self.records = logger, handlers, []

    def emit(self, record: logging.LogRecord) -> None:
        if not str(record.getMessage()).startswith(_ADVERT):
            self.records.append(record)

    def give_back(self, emit: bool) -> None:
        """Put the original handlers back; emit the kept records through them if ``emit``."""
        if self not in self.logger.handlers:
            return
        self.logger.removeHandler(self)
        for handler in self.replaced:
            self.logger.addHandler(handler)
        if emit:
            for record in self.records:
                self.logger.handle(record)
        self.records.clear()


class _HoldWarnings:
    """Keeps the warnings shown (``warnings.showwarning``) until given back."""

    def __init__(self) -> None:
        self.shown = warnings.showwarning
        self.records: list[tuple] = []
        warnings.showwarning = self._keep

    def _keep(self, *args, **kwargs) -> None:
        self.records.append((args, kwargs))

    def give_back(self, emit: bool) -> None:
        if warnings.showwarning == self._keep:
            warnings.showwarning = self.shown
        if emit:
            for args, kwargs in self.records:
                self.shown(*args, **kwargs)
        self.records.clear()


_HELD: list[_Hold | _HoldWarnings] = []


class _NoAdvert(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(_ADVERT)


def release_held(emit: bool = True) -> None:
    """Emit (or drop) what :func:`held_lightning_logs` kept, and stop holding."""
    while _HELD:
        _HELD.pop().give_back(emit)


@contextmanager
def held_lightning_logs() -> Iterator[None]:
    """Hold Lightning's log records until :func:`release_held` (or drop them on exit)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        hold = _Hold(logger, list(logger.handlers))
        for handler in hold.replaced:
            logger.removeHandler(handler)
            if not any(isinstance(f, _NoAdvert) for f in handler.filters):
                handler.addFilter(_NoAdvert())
        logger.addHandler(hold)
        _HELD.append(hold)
    _HELD.append(_HoldWarnings())
    try:
        yield
    finally:
        release_held(emit=False)  # a run that started has released them already


class ReleaseHeldLogs(L.Callback):
    """Emits the held start-up records when a loop starts (the data has loaded by then)."""

    def on_fit_start(self, trainer, pl_module) -> None:
        release_held()

    def on_validation_start(self, trainer, pl_module) -> None:
        release_held()

    def on_test_start(self, trainer, pl_module) -> None:
        release_held()

    def on_predict_start(self, trainer, pl_module) -> None:
        release_held()
