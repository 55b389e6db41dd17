"""The YAML presets (one per dataset, plus the demo's), shipped inside the package.

``svqcast reproduce`` builds every paper experiment from one of these bases plus its
overrides; ``svqcast demo`` uses ``demo.yaml``. ``$SVQCAST_CONFIGS`` points to another
folder of presets (e.g. edited copies).
"""

from __future__ import annotations

import os
from pathlib import Path

from svqcast.errors import ConfigError

CONFIGS_ENV = "SVQCAST_CONFIGS"


def configs_dir() -> Path:
    """The folder of the YAML presets: ``$SVQCAST_CONFIGS``, else the package's own."""
    env = os.environ.get(CONFIGS_ENV)
    folder = Path(env) if env else Path(__file__).resolve().parent
    if not folder.is_dir():
        raise ConfigError(
            f"preset folder {folder} not found; unset {CONFIGS_ENV} or point it to a folder "
            "of preset YAML files"
        )
    return folder


def config_path(name: str) -> Path:
    """The preset file ``<name>.yaml``; a one-line error naming the choices if absent."""
    path = configs_dir() / f"{name}.yaml"
    if not path.is_file():
        have = sorted(p.stem for p in configs_dir().glob("*.yaml"))
        raise ConfigError(f"no preset file {path}; available: {', '.join(have)}")
    return path
