"""The default of ``fit``: the second-order scheme for small networks.

Accuracy is measured against an independent lower reference: the best
continuous piecewise-linear least-squares fit with ``2^depth`` pieces and
free knots, computed here with NumPy and scipy.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy.optimize import least_squares

import relucomp
from relucomp import _fit_convex

DEPTH = 3
N = 120


def _problem(dtype):
  x = np.linspace(-1.0, 2.0, N)
  return jnp.asarray(x, dtype), jnp.asarray(2.0 * np.exp(x), dtype)


def _pl_limit(x, y, pieces):
  """MSE of the best continuous piecewise-linear fit with ``pieces`` pieces
  (free knots: variable projection, scipy's Levenberg-Marquardt from
  equidistant and from curvature-placed knots, the best kept)."""
  lo, hi = x.min(), x.max()

  def residual(u):
    gaps = np.exp(u - u.max())
    nodes = np.concatenate([[lo], lo + (hi - lo) * np.cumsum(gaps / gaps.sum())])
    nodes[-1] = hi
    idx = np.clip(np.searchsorted(nodes, x, side="right") - 1, 0, pieces - 1)
    w = (x - nodes[idx]) / (nodes[idx + 1] - nodes[idx])
    basis = np.zeros((len(x), pieces + 1))
    basis[np.arange(len(x)), idx] = 1 - w
    basis[np.arange(len(x)), idx + 1] += w
    return basis @ np.linalg.lstsq(basis, y, rcond=None)[0] - y

  curv = np.abs(np.gradient(np.gradient(y, x), x)) ** 0.4 + 1e-9
  cdf = np.concatenate([[0], np.cumsum((curv[1:] + curv[:-1]) / 2 * np.diff(x))])
  starts = [np.interp(np.linspace(0, 1, pieces + 1), cdf / cdf[-1], x),
            np.linspace(lo, hi, pieces + 1)]
  return min(float(np.mean(least_squares(residual, np.log(np.diff(s)), method="lm",
                                         max_nfev=2000).fun ** 2)) for s in starts)


@pytest.fixture(scope="module")
def default_fits():
  """The default fit (float32) of four keys, vmapped: one compiled program."""
  x, y = _problem(jnp.float32)
  keys = jax.random.split(jax.random.key(0), 4)
  res = jax.jit(jax.vmap(lambda k: relucomp.fit(x, y, key=k, depth=DEPTH)))(keys)
  return x, y, res


def test_default_reaches_a_fraction_of_the_piecewise_linear_limit(default_fits):
  x, y, res = default_fits
  limit = _pl_limit(np.asarray(x, np.float64), np.asarray(y, np.float64), 2 ** DEPTH)
  ratios = np.asarray(res.mse, np.float64) / limit
  # The benchmark (30 keys, depth 5) puts the best of 30 within 1.5x of the
  # limit on convex targets of this kind (exp on another interval) and the
  # median within 3x; the best of four at depth 3 is asserted within 3x (a
  # factor 2 of margin for the fewer keys and the different depth); every
  # key must at least get within 20x (the Adam default of the paper's
  # scheme is 9x-260x above the limit at depth 5).
  assert np.min(ratios) < 3.0, ratios
  assert np.max(ratios) < 20.0, ratios


def test_default_is_second_order_with_its_step_counts(default_fits):
  _, _, res = default_fits
  n1, n2 = _fit_convex.SECOND_ORDER_STEPS
  assert res.history.shape == (4, n1 + n2)
  assert res.pretrain_steps == n1 and res.finetune_steps == n2


def test_second_order_losses_never_rise(default_fits):
  _, _, res = default_fits
  n1 = _fit_convex.SECOND_ORDER_STEPS[0]
  h = np.asarray(res.history)
  # A rejected Levenberg-Marquardt step keeps the parameters, so the loss
  # before the next step is the same number: no rounding slack is needed.
  assert np.all(np.diff(h[:, :n1], axis=1) <= 0)
  assert np.all(np.diff(h[:, n1:], axis=1) <= 0)
  # The screened start beats none of the unscreened ones by construction,
  # but stage 2 ends no higher than it started.
  assert np.all(np.asarray(res.mse) <= h[:, n1] * (1 + 1e-6))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_params_reproduce_mse_on_raw_inputs(dtype, x64):
  del x64
  x, y = _problem(dtype)
  res = relucomp.fit(x, y, key=jax.random.key(1), depth=DEPTH)
  assert res.mse.dtype == dtype and res.params[0]["kernel"].dtype == dtype
  # Independent float64 forward pass in NumPy on the raw inputs.
  h = np.asarray(x, np.float64)[:, None]
  for i, layer in enumerate(res.params):
    h = h @ np.asarray(layer["kernel"], np.float64) + np.asarray(layer["bias"], np.float64)
    if i < len(res.params) - 1:
      h = np.maximum(h, 0)
  mse = np.mean((h[:, 0] - np.asarray(y, np.float64)) ** 2)
  # float32: the fit's own MSE is computed in float32 on normalised data
  # (relative rounding ~1e-6 per residual, cancelling to ~1e-3 of an MSE
  # that is 1e-5 of y's range squared); float64: ~1e-9.
  rtol = 2e-2 if dtype == jnp.float32 else 1e-7
  np.testing.assert_allclose(mse, float(res.mse), rtol=rtol)


def test_optimizer_overrides_each_stage():
  # Depth 1: these check which optimiser runs, not accuracy (small programs).
  x, y = _problem(jnp.float32)
  key = jax.random.key(2)
  frozen = optax.sgd(0.0)
  # Any given optimiser selects the paper's scheme, Adam where None.
  first = relucomp.fit(x, y, key=key, depth=1, pretrain_steps=5, finetune_steps=5,
                       optimizer=(frozen, None))
  h = np.asarray(first.history)
  assert np.all(h[:5] == h[0])            # stage 1 frozen
  assert np.all(h[6:] != h[5])             # stage 2 (Adam) moves
  second = relucomp.fit(x, y, key=key, depth=1, pretrain_steps=5, finetune_steps=5,
                        optimizer=(None, frozen))
  h = np.asarray(second.history)
  assert np.all(h[1:5] != h[0])            # stage 1 (Adam) moves
  assert np.all(h[5:] == h[5]) and np.isclose(float(second.mse), h[5], rtol=1e-6)
  # "adam" is the paper's scheme with its Adam defaults (1000 + 1000 steps).
  adam = relucomp.fit(x, y, key=key, depth=1, optimizer="adam")
  assert adam.history.shape == (2000,) and adam.pretrain_steps == 1000


def test_dc_default_stage2_is_second_order():
  x = jnp.linspace(-1.0, 1.0, 80)
  y = x ** 3 - x
  res = relucomp.fit(x, y, key=jax.random.key(3), method="dc", depth=2)
  n1, n2 = relucomp._fit_dc.SECOND_ORDER_STEPS
  h = np.asarray(res.history)
  assert h.shape == (n1 + n2,)
  assert np.all(np.diff(h[n1:]) <= 0)      # LM: never rises (see above)
  assert float(res.mse) < h[n1]


def test_bad_optimizer_string_names_the_argument():
  x, y = _problem(jnp.float32)
  with pytest.raises(ValueError, match="optimizer"):
    relucomp.fit(x, y, key=jax.random.key(0), optimizer="sgd")
