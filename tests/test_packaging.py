"""The package as users get it: a wheel, installed without -e into a fresh virtual environment,
works away from the source checkout (the presets ship inside it).

The fresh environment reuses the dependencies already installed for the tests (torch and the
rest) through a ``.pth`` line pointing to their site-packages: a path line in a ``.pth`` file
adds that folder to ``sys.path`` without running the ``.pth`` files inside it, so the
development install's editable hook (which would put ``src/`` on the path) stays inactive.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the sources (so the checkout gets no build folders)."""
    work = tmp_path_factory.mktemp("wheel")
    proj = work / "proj"
    shutil.copytree(
        ROOT / "src", proj / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, proj / name)
    dist = work / "dist"
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "-q", "-w", str(dist), str(proj)],
        cwd=work,
    )  # fmt: skip
    (built,) = dist.glob("svqcast-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed (not editable); returns its bin folder."""
    env_dir = tmp_path_factory.mktemp("venv") / "env"
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    purelib = run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], env_dir
    )
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(purelib.strip(), "reuse_test_dependencies.pth").write_text("\n".join(sorted(deps)) + "\n")
    run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index",
         "-q", str(wheel)],
        cwd=env_dir,
    )  # fmt: skip
    return env_dir / "bin"


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "SVQCAST_"))}
    env["MPLBACKEND"] = "Agg"
    return env


def test_wheel_holds_the_package_its_presets_and_digits_only(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "svqcast/configs/demo.yaml" in names and "svqcast/configs/weather_t2m.yaml" in names
    assert "svqcast/quantizers/svq.py" in names and "svqcast/py.typed" in names
    digits = "svqcast/data/datasets/digits/"
    assert digits + "mnist_5k.npz" in names and digits + "ATTRIBUTION.md" in names
    shipped = zipfile.ZipFile(wheel).read(digits + "mnist_5k.npz")
    assert shipped == (ROOT / "src" / digits / "mnist_5k.npz").read_bytes()
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "docs/"))]


@pytest.mark.slow
def test_installed_wheel_runs_away_from_the_checkout(installed, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = clean_env()
    where = run([str(installed / "python"), "-c", "import svqcast; print(svqcast.__file__)"],
                elsewhere, env)  # fmt: skip
    assert Path(where.strip()).is_relative_to(installed.parent), where  # the wheel, not src/
    shape = run([str(installed / "python"), "-c", "from svqcast.data.datasets import moving_digits "
                 "as m; print(m.embedded_digits().shape)"], elsewhere, env)  # fmt: skip
    assert shape.strip() == "(5000, 28, 28)"
    listing = run([str(installed / "svqcast"), "reproduce", "--list"], elsewhere, env)
    assert "t2m_svq" in listing and "t2m_simvp" in listing
    out = run(
        [str(installed / "svqcast"), "demo", "--quick", "--root", "data", "--runs-dir", "runs"],
        elsewhere,
        env,
    )
    assert "| SimVP+SVQ |" in out and "| persistence |" in out
    assert list((elsewhere / "runs").glob("demo_svq_*/test_metrics.md"))
