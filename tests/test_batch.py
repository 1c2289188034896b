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


def test_two_cpu_devices_give_the_same_numbers():
  """Runs in a subprocess so XLA can be told to expose two CPU devices."""
  code = textwrap.dedent("""
      import jax, jax.numpy as jnp, numpy as np
      import relucomp
      assert len(jax.devices()) == 2, jax.devices()
      x = jnp.linspace(0.0, 1.0, 50)
      ys = jnp.stack([x ** p for p in (2.0, 3.0, 4.0, 5.0, 6.0)])
      keys = jax.random.split(jax.random.key(3), 5)  # 5 models: padded to 6
      kw = dict(depth=2, pretrain_steps=15, finetune_steps=15)
      two = relucomp.fit_batch(x, ys, keys=keys, **kw)
      one = relucomp.fit_batch(x, ys, keys=keys, devices=jax.devices()[:1], **kw)
      # Same numbers up to float32 rounding: each device runs a batch of a
      # different size, which XLA may reduce in a different order.
      np.testing.assert_allclose(np.asarray(two.mse), np.asarray(one.mse), rtol=1e-5)
      np.testing.assert_allclose(np.asarray(two.history), np.asarray(one.history), rtol=1e-5)
      program, sharded, _ = relucomp._batch._program(
          tuple(jax.devices()), True, tuple(sorted(kw.items())))
      keys_in = jax.device_put(jnp.concatenate([keys, keys[-1:]]), sharded)
      ys_in = jax.device_put(jnp.concatenate([ys, ys[-1:]]), sharded)
      out = program(keys_in, ys_in, x)
      assert len(out.mse.sharding.device_set) == 2, out.mse.sharding
      print("ok", out.mse.sharding.spec)
  """)
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
  proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                        text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.startswith("ok")
