"""fit_batch: vmapped fits with the batch axis sharded over devices."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import relucomp

SETTINGS = dict(depth=2, pretrain_steps=15, finetune_steps=15)


def assert_close_to_rounding(got, want, rtol=1e-9):
  """Every leaf equal up to ``rtol`` of the leaf's largest entry (see below)."""
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    a, b = np.asarray(a, float), np.asarray(b, float)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.max(np.abs(b)))


@pytest.fixture(scope="module")
def data():
  x = jnp.linspace(-1.0, 2.0, 60)
  return x, jnp.stack([jnp.exp(x), x**2, jnp.cosh(x)])


def test_batched_targets_match_single_device(data, key):
  x, ys = data
  keys = jax.random.split(key, 3)
  res = relucomp.fit_batch(x, ys, keys=keys, **SETTINGS)
  one = relucomp.fit_batch(x, ys, keys=keys, devices=jax.devices()[:1], **SETTINGS)
  assert res.mse.shape == (3,) and res.history.shape == (3, 30)
  np.testing.assert_allclose(res.mse, one.mse, rtol=1e-5)
  pred = jax.vmap(lambda p: relucomp.mlp_apply(p, x[:, None])[:, 0])(res.params)
  np.testing.assert_allclose(jnp.mean((pred - ys) ** 2, axis=1), res.mse, rtol=1e-3)


def test_shared_target_and_same_numbers_as_vmap(data, key):
  x, ys = data
  keys = jax.random.split(key, 2)
  res = relucomp.fit_batch(x, ys[0], keys=keys, method="kaiming", **SETTINGS)
  ref = jax.vmap(lambda k: relucomp.fit(x, ys[0], key=k, method="kaiming", **SETTINGS))(keys)
  np.testing.assert_allclose(res.mse, ref.mse, rtol=1e-6)
  assert res.method == "kaiming"


def test_bad_input(data, key):
  x, ys = data
  keys = jax.random.split(key, 3)
  with pytest.raises(ValueError, match="keys"):
    relucomp.fit_batch(x, ys, keys=jnp.ones(3), **SETTINGS)
  with pytest.raises(ValueError, match="one row per key"):
    relucomp.fit_batch(x, ys[:2], keys=keys, **SETTINGS)
  with pytest.raises(ValueError, match="y must have shape"):
    relucomp.fit_batch(x, ys[:, :10], keys=keys, **SETTINGS)
  with pytest.raises(ValueError, match="y must be finite"):
    relucomp.fit_batch(x, ys.at[1, 3].set(jnp.nan), keys=keys, **SETTINGS)
  with pytest.raises(ValueError, match="method"):
    relucomp.fit_batch(x, ys, keys=keys, method="adamw", **SETTINGS)
  with pytest.raises(ValueError, match="devices"):
    relucomp.fit_batch(x, ys, keys=keys, devices=[], **SETTINGS)
  with pytest.raises(ValueError, match="distinct"):
    relucomp.fit_batch(x, ys, keys=keys, devices=jax.devices()[:1] * 2, **SETTINGS)
  with pytest.raises(ValueError, match="key is not a setting"):
    relucomp.fit_batch(x, ys, keys=keys, key=keys[0], **SETTINGS)
  for bad in (0, 2.5, True):
    with pytest.raises(ValueError, match="chunk_size"):
      relucomp.fit_batch(x, ys, keys=keys, chunk_size=bad, **SETTINGS)
  for bad in (0, -1.0, float("inf")):
    with pytest.raises(ValueError, match="timeout"):
      relucomp.fit_batch(x, ys, keys=keys, timeout=bad, **SETTINGS)


def test_chunks_give_the_numbers_of_one_vmap(key, x64):
  # Five models as chunks of two (2 + 2 + 1, padded to 2 + 2 + 2) against
  # one vmap of five: the same operations per model, only the vmap width
  # differs, which may let XLA sum the 60 points of a loss or gradient in
  # another order: at most 60 eps (of the sum of |terms|) per sum and step,
  # ~1e-14 in float64. 30 Adam steps at learning rate 1e-3 of a smooth loss
  # grow such a change by a factor (1 + lr L)^30 per unit of curvature L,
  # far below the 1e5 that rtol 1e-9 of a leaf's largest entry allows (sums
  # round relative to their terms, so a small entry of a leaf can move by
  # more than 1e-9 of itself). The methods that build the network from a
  # closed form amplify more (a data point crosses a kink one step earlier):
  # there chunks agree to ~1e-8 in float64, ~1e-3 in float32, so this exact
  # comparison uses "kaiming".
  x = jnp.linspace(-1.0, 2.0, 60)
  five = jnp.stack([jnp.exp(x), x**2, jnp.cosh(x), 1 + x**2, jnp.exp(0.5 * x)])
  keys = jax.random.split(key, 5)
  kw = dict(SETTINGS, method="kaiming")
  chunked = relucomp.fit_batch(x, five, keys=keys, chunk_size=2, **kw)
  whole = relucomp.fit_batch(x, five, keys=keys, **kw)
  assert chunked.mse.shape == (5,) and chunked.mse.dtype == jnp.float64
  assert_close_to_rounding(chunked, whole)


def test_two_cpu_devices_give_the_same_numbers():
  """Runs in a subprocess so XLA can be told to expose two CPU devices."""
  code = textwrap.dedent("""
      import jax, jax.numpy as jnp, numpy as np
      jax.config.update("jax_enable_x64", True)
      import relucomp
      assert len(jax.devices()) == 2, jax.devices()
      x = jnp.linspace(0.0, 1.0, 50)
      ys = jnp.stack([x ** p for p in (2.0, 3.0, 4.0, 5.0, 6.0)])
      keys = jax.random.split(jax.random.key(3), 5)  # 5 models: padded to 6
      kw = dict(method="kaiming", depth=2, pretrain_steps=0, finetune_steps=30)
      two = relucomp.fit_batch(x, ys, keys=keys, **kw)
      one = relucomp.fit_batch(x, ys, keys=keys, devices=jax.devices()[:1], **kw)
      # Same numbers up to rounding: each device runs a vmap of another width
      # (3 models against 5), which XLA may reduce in another order; float64,
      # "kaiming" and rtol 1e-9 as in test_chunks_give_the_numbers_of_one_vmap.
      for a, b in zip(jax.tree.leaves(two), jax.tree.leaves(one)):
        a, b = np.asarray(a, float), np.asarray(b, float)
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9 * np.max(np.abs(b)))
      # One model per device at least.
      try:
        relucomp.fit_batch(x, ys[:1], keys=keys[:1], **kw)
        raise AssertionError("a batch of one on two devices was accepted")
      except ValueError as e:
        assert "keys has 1 entries but devices has 2" in str(e), e
      program, sharded, _ = relucomp._batch._program(
          tuple(jax.devices()), True, "threefry2x32", 3, tuple(sorted(kw.items())))
      data = jax.random.key_data(jnp.concatenate([keys, keys[-1:]]))
      out = program(jax.device_put(data, sharded),
                    jax.device_put(jnp.concatenate([ys, ys[-1:]]), sharded), x)
      assert len(out.mse.sharding.device_set) == 2, out.mse.sharding
      print("ok", out.mse.sharding.spec)
  """)
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
  proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                        text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.startswith("ok")
