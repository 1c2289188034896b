"""save / load: round trips, atomic writes, checksums and schema validation."""

from __future__ import annotations

import importlib
import multiprocessing
import os
import warnings

import flax.serialization
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings

import relucomp
from relucomp import _io
from conftest import enable_x64


def _result(dtype=np.float32, batch=(), method="enforced", snapshots=False):
  """A FitResult made of NumPy arrays (no training: fast, and usable in a child)."""
  rng = np.random.default_rng(0)

  def arr(*shape):
    return rng.normal(size=batch + shape).astype(dtype)

  widths = [1, 4, 4, 1]
  params = [{"kernel": arr(a, b), "bias": arr(b)} for a, b in zip(widths[:-1], widths[1:])]
  snaps = None
  if snapshots:
    snaps = [{"kernel": arr(3, a, b), "bias": arr(3, b)} for a, b in zip(widths[:-1], widths[1:])]
  return relucomp.FitResult(
      params=params, mse=arr(), history=arr(7), diverged=np.zeros(batch, bool),
      pretrained={"bias": arr(), "peaks": arr(3), "scales": arr(2), "slope": arr()},
      snapshots=snaps, interval=arr(2), y_range=arr(2), sign=arr(), learning_rate=arr(2),
      method=method, depth=2, pretrain_steps=3, finetune_steps=4,
      track_pieces_every=2 if snapshots else None, n_params=33)


def _equal(a, b):
  leaves_a, tree_a = jax.tree.flatten(a)
  leaves_b, tree_b = jax.tree.flatten(b)
  return tree_a == tree_b and all(
      np.asarray(x).dtype == np.asarray(y).dtype and np.array_equal(x, y, equal_nan=True)
      for x, y in zip(leaves_a, leaves_b))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
  path = tmp_path_factory.mktemp("io") / "fit.msgpack"
  result = _result()
  relucomp.save(result, path)
  return result, path.read_bytes()


@pytest.mark.parametrize("batch, snapshots", [((), False), ((), True), ((3,), True)])
def test_round_trip_is_bit_exact(tmp_path, batch, snapshots):
  result = _result(batch=batch, snapshots=snapshots)
  relucomp.save(result, tmp_path / "r.msgpack")
  assert _equal(relucomp.load(tmp_path / "r.msgpack"), result)
  assert os.listdir(tmp_path) == ["r.msgpack"]          # no temporary file left


def test_float64_round_trip_and_downcast_warning(tmp_path):
  result = _result(np.float64)
  path = tmp_path / "r.msgpack"
  relucomp.save(result, path)
  with enable_x64(True):
    with warnings.catch_warnings():
      warnings.simplefilter("error")
      assert _equal(relucomp.load(path), result)
  with enable_x64(False):
    with pytest.warns(UserWarning, match="float64 arrays but jax_enable_x64 is off"):
      back = relucomp.load(path)
  assert back.params[0]["kernel"].dtype == jnp.float32


def test_a_failing_save_keeps_the_old_file(tmp_path):
  path = tmp_path / "r.msgpack"
  relucomp.save(_result(), path)
  before = path.read_bytes()
  for bad in (_result().replace(method=object()), _result().replace(method="evil"),
              _result().replace(depth=2.5), "not a result"):
    with pytest.raises(ValueError, match="result"):
      relucomp.save(bad, path)
    assert path.read_bytes() == before
  with pytest.raises(OSError):
    relucomp.save(_result(), tmp_path / "missing-dir" / "r.msgpack")
  assert sorted(os.listdir(tmp_path)) == ["r.msgpack"]


@settings(max_examples=60)
@given(flips=st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(0, 7)), min_size=1,
                      max_size=3))
def test_flipped_bits_never_load_as_another_result(saved, tmp_path_factory, flips):
  result, data = saved
  data = bytearray(data)
  for position, bit in flips:
    data[position % len(data)] ^= 1 << bit
  path = tmp_path_factory.mktemp("flip") / "r.msgpack"
  path.write_bytes(bytes(data))
  try:
    back = relucomp.load(path)
  except ValueError:
    return
  assert _equal(back, result)                # only flips that cancel out may load


def test_truncated_and_foreign_files_raise(saved, tmp_path):
  _, data = saved
  path = tmp_path / "r.msgpack"
  for content in (data[:len(data) // 2], b"", b"hello", flax.serialization.msgpack_serialize(
      {"format": "relucomp.FitResult", "version": 99})):
    path.write_bytes(content)
    with pytest.raises(ValueError, match="r.msgpack"):
      relucomp.load(path)


def _rewrite(path, edit):
  """Rewrites a saved file with ``edit`` applied to its payload and a valid checksum."""
  outer = flax.serialization.msgpack_restore(path.read_bytes())
  state = flax.serialization.msgpack_restore(outer["payload"])
  edit(state)
  path.write_bytes(_io._envelope(flax.serialization.msgpack_serialize(state)))


@pytest.mark.parametrize("edit, match", [
    (lambda s: s["params"]["1"].update(kernel=np.ones((5, 5), np.float32),
                                       bias=np.ones(3, np.float32)), "params"),
    (lambda s: s["params"]["1"].update(kernel=np.ones((4, 5), np.float32),
                                       bias=np.ones(5, np.float32)), "chain"),
    (lambda s: s["settings"].update(method="evil"), "method"),
    (lambda s: s["settings"].update(depth=-1), "depth"),
    (lambda s: s["settings"].update(depth=3), "layers"),
    (lambda s: s["arrays"].update(history=np.ones(2, np.float32)), "history"),
    (lambda s: s["arrays"].update(mse=np.array(1)), "mse"),
    (lambda s: s["arrays"].update(diverged=np.array(0.0, np.float32)), "diverged"),
    (lambda s: s["params"]["0"].update(kernel=np.ones((1, 4), np.int32)), "float"),
    (lambda s: s["params"]["0"].update(kernel="x"), "float"),
    (lambda s: s.pop("arrays"), "arrays"),
    (lambda s: s.update(evil=1), "unknown"),
    (lambda s: s["pretrained"].pop("peaks"), "pretrained"),
    (lambda s: s["settings"].update(track_pieces_every=5), "snapshots"),
])
def test_schema_is_validated_behind_a_valid_checksum(tmp_path, edit, match):
  path = tmp_path / "r.msgpack"
  relucomp.save(_result(), path)
  _rewrite(path, edit)
  with pytest.raises(ValueError, match=match):
    relucomp.load(path)


def test_a_changed_payload_fails_the_checksum(tmp_path):
  path = tmp_path / "r.msgpack"
  relucomp.save(_result(), path)
  outer = flax.serialization.msgpack_restore(path.read_bytes())
  state = flax.serialization.msgpack_restore(outer["payload"])
  state["arrays"]["mse"] = np.float32(0.0)
  outer["payload"] = flax.serialization.msgpack_serialize(state)
  path.write_bytes(flax.serialization.msgpack_serialize(outer))
  with pytest.raises(ValueError, match="checksum"):
    relucomp.load(path)


def test_version_1_files_load_with_a_warning(tmp_path):
  path = tmp_path / "r.msgpack"
  relucomp.save(_result(), path)
  outer = flax.serialization.msgpack_restore(path.read_bytes())
  state = flax.serialization.msgpack_restore(outer["payload"])
  state.update(format="relucomp.FitResult", version=1)
  path.write_bytes(flax.serialization.msgpack_serialize(state))
  with pytest.warns(UserWarning, match="no checksum"):
    assert _equal(relucomp.load(path), _result())


def test_the_method_list_agrees_with_fit():
  # The method list lives with fit (the training modules); wherever it is, it agrees.
  found = []
  for name in ("relucomp._fit", "relucomp._engine", "relucomp._training"):
    try:
      module = importlib.import_module(name)
    except ImportError:
      continue
    if hasattr(module, "ALL_METHODS"):
      found.append(tuple(module.ALL_METHODS))
  assert found, "no training module defines ALL_METHODS"
  assert all(set(methods) == set(_io.METHODS) for methods in found)


def _save_many(path, seed, rounds):
  # Runs in a child process: the results are NumPy-only, so no device is needed.
  for i in range(rounds):
    relucomp.save(_result().replace(pretrain_steps=3, method=("enforced", "kaiming")[seed]),
                  path)


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
def test_concurrent_saves_leave_a_readable_file(tmp_path):
  path = str(tmp_path / "r.msgpack")
  relucomp.save(_result(), path)
  # fork: the children only serialise NumPy arrays and write files (no JAX
  # computation), and forking spares them importing JAX again.
  ctx = multiprocessing.get_context("fork")
  workers = [ctx.Process(target=_save_many, args=(path, seed, 40)) for seed in (0, 1)]
  for w in workers:
    w.start()
  reads = 0
  while any(w.is_alive() for w in workers):
    back = relucomp.load(path)               # never a partial file
    assert back.method in ("enforced", "kaiming")
    reads += 1
  for w in workers:
    w.join()
    assert w.exitcode == 0
  assert relucomp.load(path).method in ("enforced", "kaiming")
  assert os.listdir(tmp_path) == ["r.msgpack"]
  assert reads > 0
