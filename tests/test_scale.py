"""Targets of any scale: the loss lives on the normalised scale, so a fit of
``s * y`` is a fit of ``y`` whatever ``s``; ``mse`` and ``rmse`` report it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import relucomp

KW = dict(depth=3, pretrain_steps=40, finetune_steps=40)


@pytest.fixture(scope="module")
def unit_fit():
  x = jnp.linspace(0.0, 1.0, 40)
  return x, relucomp.fit(x, x ** 2, key=jax.random.key(0), **KW)


@pytest.mark.parametrize("scale", [1e20, 1e25, 1e-30, 1e-12])
def test_scaled_targets_float32(unit_fit, scale):
  x, ref = unit_fit
  mse64 = float(ref.mse) * scale ** 2          # the true MSE, in float64
  in_range = np.finfo(np.float32).tiny < mse64 < np.finfo(np.float32).max
  with _no_warning() if in_range else pytest.warns(UserWarning, match="rmse"):
    res = relucomp.fit(x, scale * x ** 2, key=jax.random.key(0), **KW)
  assert not bool(res.diverged)
  # z = (s y - min s y) / (s range) equals z of y up to a few rounding units;
  # float32 training amplifies such differences to tens of per cent (see
  # test_vmap_loop), so only the size of the error is compared here and the
  # exact agreement in float64 below.
  assert 0.5 < (float(res.rmse) / scale) / float(ref.rmse) < 2.0
  if in_range:
    np.testing.assert_allclose(float(res.mse), float(res.rmse) ** 2, rtol=1e-5)


@pytest.mark.parametrize("scale", [1e150, 1e-150])
def test_scaled_targets_float64(x64, scale):
  x = np.linspace(0.0, 1.0, 40)
  ref = relucomp.fit(x, x ** 2, key=jax.random.key(0), **KW)
  res = relucomp.fit(x, scale * x ** 2, key=jax.random.key(0), **KW)
  # Float64 amplifies the few rounding units by which z differs to far below
  # 1e-6 in 80 steps (test_vmap_loop measures 1e-8 and less).
  np.testing.assert_allclose(float(res.rmse) / scale, float(ref.rmse), rtol=1e-6)
  np.testing.assert_allclose(float(res.mse) / scale ** 2, float(ref.mse), rtol=1e-6)


class _no_warning:
  def __enter__(self):
    import warnings
    self._ctx = warnings.catch_warnings()
    self._ctx.__enter__()
    warnings.simplefilter("error", UserWarning)

  def __exit__(self, *exc):
    return self._ctx.__exit__(*exc)
