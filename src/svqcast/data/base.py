"""The pieces every dataset file shares: the dataset protocol, the splits a loader returns
(with their :class:`~svqcast.data.climatology.Climatology`) and the option checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from svqcast.data.climatology import Climatology
from svqcast.data.spec import DataSpec
from svqcast.errors import ConfigError, choices_error

#: Evaluation protocols every loader accepts: "standard" keeps a real validation split held
#: out from training; "openstl" validates on the test split, as OpenSTL and the published
#: tables do (checkpoints selected on the test set).
PROTOCOLS: tuple[str, ...] = ("standard", "openstl")
#: Other names accepted for "standard".
PROTOCOL_ALIASES: dict[str, str] = {"holdout": "standard"}


class ForecastDataset(Dataset):
    """Yields ``(x, y)``: float32 tensors (T_in, C, H, W) and (T_out, C, H, W), normalised.

    Datasets that know the time of each frame override :meth:`target_phases` so that the
    climatology baseline can look up the matching calendar phase for each target frame.
    """

    def target_phases(self, index: int) -> np.ndarray | None:
        """Climatology phase (an int in [0, P)) of each target frame, or None (P == 1)."""
        return None


@dataclass
class Splits:
    """What a dataset file's ``load`` returns."""

    train: ForecastDataset
    val: ForecastDataset
    test: ForecastDataset
    spec: DataSpec
    climatology: Climatology


def check_protocol(protocol: str) -> str:
    """The canonical protocol name: ``standard`` (alias ``holdout``) keeps a real validation
    split; ``openstl`` validates on the test set."""
    canonical = PROTOCOL_ALIASES.get(protocol, protocol)
    if canonical not in PROTOCOLS:
        raise choices_error("protocol", protocol, PROTOCOLS)
    return canonical


def year_range(value: Any, key: str) -> tuple[int, int]:
    """An option naming years, ``2017`` or ``(2017, 2018)``, as checked (first, last);
    ``key`` names the option in the one-line error."""
    if isinstance(value, int | np.integer | str):
        value = (value, value)
    try:
        first, last = (int(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{key} must be (first, last) years, got {value!r}") from exc
    if first > last:
        raise ConfigError(f"{key}: first year {first} is after last year {last}")
    return first, last


def int_option(dataset: str, key: str, value: Any, minimum: int = 1, example: int = 4) -> int:
    """The option ``key`` as an integer >= ``minimum`` (an int, or a string such as "4" as
    the CLI passes it), else a one-line ConfigError naming the option and the value."""
    number = None
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        number = int(value)
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            number = None
    if number is None or number < minimum:
        raise ConfigError(
            f"option {key}={value!r} of {dataset} is not valid; pass an integer >= {minimum} "
            f"(e.g. {key}={example})"
        )
    return number


def flag_option(value: Any) -> bool:
    """A yes/no option as given in a config or on the command line ("false", "no", "0",
    "off" are false; any other text is true)."""
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "no", "0", "off")
    return bool(value)
