"""The classifier benchmark's CIFAR-10 code path, on tiny synthetic pickles."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
from conftest import load_script

_PATH = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", "classify.py")


def _load_script():
  return load_script(_PATH, "classify_benchmark")


def _write_batch(path, n, rng):
  # The layout of the CIFAR-10 python version: bytes keys, uint8 rows of
  # 3072 = 3 x 32 x 32 values, a list of int labels.
  labels = rng.integers(0, 10, size=n)
  data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
  data[:, 0] = labels * 25  # a learnable signal
  batch = {b"batch_label": b"synthetic", b"labels": labels.tolist(), b"data": data,
           b"filenames": [f"img_{i}.png".encode() for i in range(n)]}
  with open(path, "wb") as f:
    pickle.dump(batch, f, protocol=2)


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory):
  rng = np.random.default_rng(0)
  root = tmp_path_factory.mktemp("cifar-10-batches-py")
  for i in range(1, 6):
    _write_batch(root / f"data_batch_{i}", 12, rng)
  _write_batch(root / "test_batch", 10, rng)
  return root


def test_cifar_path_runs(cifar_dir, tmp_path):
  script = _load_script()
  x_train, x_test, y_train, y_test = script.load_cifar10(str(cifar_dir))
  assert x_train.shape == (60, 3072) and x_test.shape == (10, 3072)
  assert x_train.dtype == np.float32 and 0 <= x_train.min() and x_train.max() <= 1
  assert y_train.shape == (60,) and y_train.dtype == np.int32

  out = tmp_path / "out"
  results = script.main(["--cifar", str(cifar_dir), "--seeds", "1", "--epochs", "2",
                         "--hidden", "4", "--depth", "2", "--batch", "16",
                         "--max-train", "48", "--out", str(out)])
  cfg = results["config"]
  assert cfg["dataset"] == "CIFAR-10" and cfg["n_in"] == 3072
  assert cfg["n_train"] == 48 and cfg["n_test"] == 10
  comp, dense = results["models"]["CompositionalDense"], results["models"]["nnx.Linear"]
  assert dense["params"] >= comp["params"] > comp["params_stage1"]
  for res in (comp, dense):
    acc = res["runs"][0]["accuracy"]
    assert len(acc) == 3 and all(0 <= a <= 1 for a in acc)
    assert np.all(np.isfinite(res["runs"][0]["train_loss"]))
  for ext in ("json", "md", "png"):
    assert (out / f"classify_cifar10.{ext}").stat().st_size > 0
  saved = json.loads((out / "classify_cifar10.json").read_text())
  assert saved["models"]["nnx.Linear"]["params"] == dense["params"]


def test_cifar_path_rejects_bad_folders(cifar_dir, tmp_path):
  script = _load_script()
  with pytest.raises(ValueError, match="missing file"):
    script.load_cifar10(str(tmp_path))
  bad = tmp_path / "bad"
  bad.mkdir()
  for name in os.listdir(cifar_dir):
    (bad / name).write_bytes((cifar_dir / name).read_bytes())
  with open(bad / "test_batch", "wb") as f:
    pickle.dump({b"data": np.zeros((3, 10), np.uint8), b"labels": [0, 1, 2]}, f)
  with pytest.raises(ValueError, match="3072"):
    script.load_cifar10(str(bad))


def test_matched_dense_width():
  script = _load_script()
  for n_in, n_classes, target in [(64, 10, 6858), (3072, 10, 100), (5, 3, 9)]:
    width = script.matched_dense_width(n_in, n_classes, target)
    count = width * (n_in + 1) + n_classes * (width + 1)
    assert count >= target
    assert width == 1 or (width - 1) * (n_in + 1) + n_classes * width < target
