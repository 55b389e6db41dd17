"""``ForecastDataModule``: any registered dataset as a Lightning DataModule.

It owns the data side of a run: loading (lazily, once), the train-split normaliser and
climatology, the DataSpec the model is built from, and the four dataloaders, which are
resumable mid-epoch and shard across DDP ranks (:mod:`svqcast.data.loaders`). Its
hyperparameters (dataset, root, batch size, protocol, seed, options) are saved in every
checkpoint, so a checkpoint records which data it was trained on.
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import Dataset

from svqcast.data import DATASETS, dataset_module
from svqcast.data.base import (
    PROTOCOL_ALIASES,
    PROTOCOLS,
    Splits,
    check_protocol,
)
from svqcast.data.climatology import Climatology, WithClimatology
from svqcast.data.gridded.identity import grid_permutation, in_units_of
from svqcast.data.loaders import ResumableLoader, make_loader
from svqcast.data.spec import DataSpec
from svqcast.errors import ConfigError, DataError, SvqcastError, choices_error


def _from_text(value: Any) -> Any:
    """An option given as text on the command line (``--data.options.first_year 2010``)
    becomes the number or list it spells; any other text (paths, names) stays text."""
    if not isinstance(value, str):
        return value
    import yaml

    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        return value
    numeric = isinstance(parsed, (int, float)) and not isinstance(parsed, bool)
    return parsed if numeric or isinstance(parsed, list) else value


def load_splits(
    dataset: str, root: str | Path, protocol: str = "standard", options: dict | None = None
) -> Splits:
    """Call the dataset's ``load`` with checked options and the evaluation protocol.

    ``protocol="openstl"`` makes the validation split the test split (as OpenSTL and the
    published tables do); loaders that accept a ``protocol`` option apply it themselves
    (so that, e.g., data they would hold out for validation goes back into training).
    """
    protocol = check_protocol(protocol)
    module = dataset_module(dataset)
    options = {key: _from_text(value) for key, value in (options or {}).items()}
    if "protocol" in options:
        raise ConfigError("pass protocol as the data module's argument, not inside options")
    params = list(inspect.signature(module.load).parameters.values())
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params)
    # the first two parameters are the dataset name and the root; the rest are options
    named = [p.name for p in params[2:] if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    if not takes_any:
        unknown = sorted(set(options) - set(named))
        if unknown:
            valid = ", ".join(k for k in named if k != "protocol") or "(none)"
            raise ConfigError(
                f"unknown option(s) {', '.join(unknown)} for dataset {dataset}; valid: {valid}"
            )
    if takes_any or "protocol" in named:
        # a module may spell "standard" by an alias (e.g. "holdout"): use its own word
        own = getattr(module, "PROTOCOLS", PROTOCOLS)
        if protocol not in own:
            protocol = next(
                (a for a, p in PROTOCOL_ALIASES.items() if p == protocol and a in own), protocol
            )
        return module.load(dataset, root, protocol=protocol, **options)
    splits = module.load(dataset, root, **options)
    if protocol == "openstl":
        splits.val = splits.test
    return splits


class ForecastDataModule(L.LightningDataModule):
    """Train / val / test / predict dataloaders of one dataset.

    ``options`` are the dataset's own ``load`` options (in_len, out_len, years, ...).
    Test batches are ``(x, y, climatology)``; predict batches are ``(x, y)`` of the test
    split. ``.spec`` and ``.climatology`` load the data on first access. Use it with
    ``Trainer(use_distributed_sampler=False)``: its loaders shard by rank themselves.
    """

    def __init__(
        self,
        dataset: str = "synthetic_weather",
        root: str = "data",
        batch_size: int = 16,
        num_workers: int = 0,
        protocol: str = "standard",
        seed: int = 0,
        options: dict | None = None,
    ) -> None:
        super().__init__()
        if dataset not in DATASETS:
            raise choices_error("dataset", dataset, DATASETS)
        if PROTOCOL_ALIASES.get(protocol, protocol) not in PROTOCOLS:
            raise choices_error("protocol", protocol, PROTOCOLS)
        if int(batch_size) < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if int(num_workers) < 0:
            raise ConfigError(f"num_workers must be >= 0, got {num_workers}")
        if options is not None and not isinstance(options, dict):
            raise ConfigError(f"options must be a mapping of load options, got {options!r}")
        self.save_hyperparameters()
        self.dataset = dataset
        self.root = str(root)
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.protocol = protocol
        self.seed = int(seed)
        self.options = dict(options or {})
        self._splits: Splits | None = None
        self._saved_spec: DataSpec | None = None

    # ------------------------------------------------------------------ data
    @property
    def splits(self) -> Splits:
        if self._splits is None:
            try:
                self._splits = load_splits(self.dataset, self.root, self.protocol, self.options)
            except SvqcastError:
                raise
            except OSError as exc:  # a root that cannot be made or read: one line
                where = exc.filename or self.root
                raise DataError(
                    f"cannot read or create the {self.dataset} data at {where}: "
                    f"{exc.strerror or exc}; pass a readable, writable --data.root"
                ) from None
        return self._splits

    @property
    def spec(self) -> DataSpec:
        """The DataSpec (loads the data on first access)."""
        return self.splits.spec

    @property
    def climatology(self) -> Climatology:
        return self.splits.climatology

    def align_to(self, spec: DataSpec) -> str:
        """Map this data to ``spec`` (a checkpoint's) where it is the same data in another
        layout or in other units, and say what was done ("" when nothing was):

        * the same grid in another lat/lon order (north-first vs south-first, -180..180 vs
          0..360): every split, the climatology and the spec's coordinates are reordered;
        * other units with a safe (affine, increasing) conversion, e.g. degC for K, whose
          converted normalisation statistics equal ``spec``'s: the normalised windows (and
          the climatology, kept in normalised space) are already the same, so only the
          spec's units and statistics are restated in ``spec``'s units (reports follow).

        Anything else that differs is left for the caller's check to name."""
        done = [self._align_grid(spec), self._align_units(spec)]
        return "; ".join(d for d in done if d)

    def _align_grid(self, spec: DataSpec) -> str:
        mine = self.splits.spec
        if mine.lat is None or mine.lon is None or spec.lat is None or spec.lon is None:
            return ""
        if mine.lat.shape != spec.lat.shape or mine.lon.shape != spec.lon.shape:
            return ""
        try:
            ilat, ilon = grid_permutation(spec.lat, spec.lon, mine.lat, mine.lon, where="data")
        except SvqcastError:
            return ""
        ilat, ilon = np.asarray(ilat), np.asarray(ilon)
        same = np.array_equal(ilat, np.arange(len(ilat))) and np.array_equal(
            ilon, np.arange(len(ilon))
        )
        if same and np.array_equal(mine.lon, spec.lon):
            return ""
        s = self.splits
        mean = s.climatology.mean[..., ilat, :][..., ilon]
        self._splits = dataclasses.replace(
            s,
            train=Reordered(s.train, ilat, ilon),
            val=Reordered(s.val, ilat, ilon),
            test=Reordered(s.test, ilat, ilon),
            spec=dataclasses.replace(mine, lat=spec.lat.copy(), lon=spec.lon.copy()),
            climatology=Climatology(np.ascontiguousarray(mean)),
        )
        return (
            "the data's grid is the checkpoint's in another lat/lon order: reordered to "
            "the checkpoint's"
        )

    def _align_units(self, spec: DataSpec) -> str:
        mine = self.splits.spec
        converted = in_units_of(mine, spec)
        if converted is None or converted is mine:
            return ""
        if spec.first_difference(converted) is not None:
            return ""  # other data (or another difference): the caller's check names it
        self._splits = dataclasses.replace(self.splits, spec=converted)
        pairs = sorted({(a.units, b.units) for a, b in zip(mine.channels, spec.channels) if a != b})
        what = ", ".join(f"{a} converted to the checkpoint's {b}" for a, b in pairs)
        return f"the data is in other units: {what} (reports in {_units_list(spec)})"

    def prepare_data(self) -> None:
        """Embedded datasets generate their files here (rank 0 only under DDP)."""
        if hasattr(dataset_module(self.dataset), "synth"):
            _ = self.splits

    def setup(self, stage: str | None = None) -> None:
        _ = self.splits

    # ------------------------------------------------------------------ loaders
    def _loader(self, dataset, train: bool = False) -> ResumableLoader:
        """Shuffled by (seed, epoch) and padded across ranks for training; in order and
        sharded without padding otherwise (every evaluation sample counted once)."""
        return make_loader(
            dataset, self.batch_size, train=train, seed=self.seed, num_workers=self.num_workers
        )

    def train_dataloader(self) -> ResumableLoader:
        return self._loader(self.splits.train, train=True)

    def val_dataloader(self) -> ResumableLoader:
        return self._loader(self.splits.val)

    def test_dataloader(self) -> ResumableLoader:
        return self._loader(WithClimatology(self.splits.test, self.splits.climatology))

    def predict_dataloader(self) -> ResumableLoader:
        return self._loader(self.splits.test)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The spec (normaliser included) goes into checkpoints beside the hyperparameters."""
        if self._splits is None:
            return {} if self._saved_spec is None else {"spec": self._saved_spec.to_dict()}
        return {"spec": self._splits.spec.to_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "spec" in state_dict:
            self._saved_spec = DataSpec.from_dict(state_dict["spec"])

    @property
    def saved_spec(self) -> DataSpec | None:
        """The spec restored from a checkpoint, if any (without loading the data)."""
        return self._saved_spec


def _units_list(spec: DataSpec) -> str:
    return ", ".join(dict.fromkeys(c.units or "no units" for c in spec.channels))


class Reordered(Dataset):
    """A dataset's windows with the grid reordered: ``x[..., ilat, :][..., ilon]``."""

    def __init__(self, dataset: Dataset, ilat: np.ndarray, ilon: np.ndarray) -> None:
        self.dataset = dataset
        self.ilat = torch.as_tensor(ilat, dtype=torch.long)
        self.ilon = torch.as_tensor(ilon, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return tuple(
            t.index_select(-2, self.ilat).index_select(-1, self.ilon) for t in self.dataset[index]
        )

    def target_phases(self, index: int):
        return self.dataset.target_phases(index)

    def set_epoch(self, epoch: int) -> None:
        set_epoch = getattr(self.dataset, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(epoch)
