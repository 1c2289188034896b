"""lipschitz_bound's two estimates (Heinecke and Hwang, Theorem 6) and the
robustness of lipschitz_bound and local_lipschitz.

The references are NumPy in float64: a forward pass, the exact ``||A||_2`` of
each sampled point's region from the NumPy activation pattern, difference
quotients, and Theorem 6(i)'s formula evaluated directly.
"""

from __future__ import annotations

import functools

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given

import relucomp
from conftest import enable_x64

# A few architectures, so hypothesis varies the weights without recompiling
# for every example: (widths), from no hidden layer to four.
ARCHS = [(2, 3), (1, 5, 2), (2, 4, 4, 1), (3, 5, 4, 5, 2), (2, 3, 3, 3, 3, 1)]


def _numpy_net(seed, widths, scale, normalise):
  rng = np.random.default_rng(seed)
  kernels = [scale * rng.normal(size=(a, b)) / np.sqrt(a)
             for a, b in zip(widths[:-1], widths[1:])]
  if normalise and len(kernels) > 1:      # Theorem 6(i)'s assumption
    kernels[0] = kernels[0] / np.linalg.norm(kernels[0], axis=0, keepdims=True)
    kernels[-1] = kernels[-1] / np.linalg.norm(kernels[-1], axis=1, keepdims=True)
  biases = [rng.normal(size=b) for b in widths[1:]]
  return kernels, biases


def _params(kernels, biases, dtype=np.float64):
  return [{"kernel": jnp.asarray(k, dtype), "bias": jnp.asarray(b, dtype)}
          for k, b in zip(kernels, biases)]


def _forward(kernels, biases, x):
  h = x
  for k, b in zip(kernels[:-1], biases[:-1]):
    h = np.maximum(h @ k + b, 0.0)
  return h @ kernels[-1] + biases[-1]


def _local_numpy(kernels, biases, x):
  """||A||_2 of x's region: A = W_L D_{L-1} ... D_1 W_1 from NumPy's pattern."""
  h, a = x, np.eye(x.shape[0])
  for k, b in zip(kernels[:-1], biases[:-1]):
    z = h @ k + b
    d = (z > 0).astype(float)
    a = (a @ k) * d
    h = np.maximum(z, 0.0)
  return np.linalg.norm(a @ kernels[-1], 2)


def _theorem6_numpy(kernels):
  """Theorem 6(i) without normalisation, as a plain product (no logarithms)."""
  if len(kernels) == 1:
    return np.linalg.norm(kernels[0], 2)
  first = np.linalg.norm(kernels[0], axis=0)
  last = np.linalg.norm(kernels[-1], axis=1)
  if len(kernels) == 2:
    return float(np.sum(first * last))
  w = max(np.abs(k).max() for k in kernels[1:-1])
  paths = np.prod([k.shape[1] for k in kernels[1:-2]])
  return float(first.sum() * last.sum() * w ** (len(kernels) - 2) * paths)


@given(arch=st.sampled_from(ARCHS), seed=st.integers(0, 2**31 - 1),
       scale=st.floats(0.2, 3.0), normalise=st.booleans())
def test_bounds_dominate_exact_and_brute_force(arch, seed, scale, normalise):
  with enable_x64():
    kernels, biases = _numpy_net(seed, arch, scale, normalise)
    params = _params(kernels, biases)
    spectral = float(relucomp.lipschitz_bound(params))
    max_weight = float(relucomp.lipschitz_bound(params, method="max_weight"))
    # The formula, evaluated independently: agreement to rounding (logs of
    # numbers near 1..1e3, so about 10 eps relative).
    np.testing.assert_allclose(max_weight, _theorem6_numpy(kernels), rtol=1e-12)
    np.testing.assert_allclose(
        spectral, np.prod([np.linalg.norm(k, 2) for k in kernels]), rtol=1e-12)
    if normalise and len(arch) > 3:   # w^(L-2) n_1 ... n_{L-1}
      w = max(np.abs(k).max() for k in kernels[1:-1])
      np.testing.assert_allclose(
          max_weight, w ** (len(arch) - 3) * np.prod(arch[1:-1]), rtol=1e-12)
    elif normalise and len(arch) == 3:   # one hidden layer: n_1 atoms of norm 1
      np.testing.assert_allclose(max_weight, arch[1], rtol=1e-12)
    rng = np.random.default_rng(seed % 1000)
    xs = rng.normal(size=(64, arch[0])) * 2
    local = np.asarray(relucomp.local_lipschitz(params, jnp.asarray(xs)))
    reference = np.array([_local_numpy(kernels, biases, x) for x in xs])
    # Same pattern (a pre-activation within 1e-12 of 0 is improbable for
    # Gaussian data), then two float64 SVDs of the same matrix.
    np.testing.assert_allclose(local, reference, rtol=1e-10, atol=1e-12)
    # Bounds are mathematical upper bounds; their float64 evaluations are
    # within 1e-12 relative.
    for bound in (spectral, max_weight):
      assert local.max() <= bound * (1 + 1e-12)
    # Brute force: difference quotients of the NumPy forward pass.
    ys = xs + rng.normal(size=xs.shape) * 10.0 ** rng.uniform(-4, 0, size=(len(xs), 1))
    quotients = (np.linalg.norm(_forward(kernels, biases, ys) - _forward(kernels, biases, xs),
                                axis=1) / np.linalg.norm(ys - xs, axis=1))
    for bound in (spectral, max_weight):
      assert quotients.max() <= bound * (1 + 1e-9)   # rounding of f(y) - f(x)


def test_which_bound_is_tighter(x64):
  """max_weight pairs each neuron's first- and last-layer norms: it wins when
  they are misaligned; the product of spectral norms wins on random deep nets."""
  misaligned = _params([np.array([[1.0, 0.1]]), np.array([[0.1], [1.0]])],
                       [np.zeros(2), np.zeros(1)])
  assert float(relucomp.lipschitz_bound(misaligned, method="max_weight")) == pytest.approx(0.2)
  assert float(relucomp.lipschitz_bound(misaligned)) == pytest.approx(1.01)
  # Exact: both neurons active for x > 0 (slope 0.2), none for x < 0.
  local = relucomp.local_lipschitz(misaligned, jnp.array([[1.0], [-1.0]]))
  np.testing.assert_allclose(local, [0.2, 0.0], atol=1e-15)
  # Ends that use one neuron each around a rank-one hidden kernel: max_weight
  # is exact (0.5), the product of norms n times larger.
  n = 4
  ends = _params([np.eye(1, n), 0.5 * np.ones((n, n)), np.eye(n, 1)],
                 [np.zeros(n), np.zeros(n), np.zeros(1)])
  assert float(relucomp.lipschitz_bound(ends, method="max_weight")) == pytest.approx(0.5)
  assert float(relucomp.lipschitz_bound(ends)) == pytest.approx(n * 0.5)
  assert float(relucomp.local_lipschitz(ends, jnp.ones(1))) == pytest.approx(0.5)
  kernels, biases = _numpy_net(0, (2, 16, 16, 16, 1), 1.0, False)
  params = _params(kernels, biases)
  assert (float(relucomp.lipschitz_bound(params))
          < float(relucomp.lipschitz_bound(params, method="max_weight")))


def test_float64_weights_beyond_float32():
  kernels = [np.full((2, 3), 1e200), np.ones((3, 1))]
  params = [{"kernel": k, "bias": np.zeros(k.shape[1])} for k in kernels]
  with enable_x64(False):
    with pytest.raises(ValueError, match=r"params\[0\]\['kernel'\].*jax_enable_x64"):
      relucomp.lipschitz_bound(params)
    with pytest.raises(ValueError, match=r"params\[0\]\['kernel'\].*jax_enable_x64"):
      relucomp.local_lipschitz(params, np.ones(2))
    small = [{"kernel": np.ones((2, 1)), "bias": np.zeros(1)}]
    with pytest.raises(ValueError, match=r"x holds values up to 1e\+200"):
      relucomp.local_lipschitz(small, np.array([1e200, 0.0]))
    # Finite weights whose bound overflows float32: a clear error, not inf.
    huge = [{"kernel": np.full((1, 1), 1e30, np.float32), "bias": np.zeros(1, np.float32)}] * 2
    with pytest.raises(ValueError, match="overflows float32"):
      relucomp.lipschitz_bound(huge)
    with pytest.raises(ValueError, match="overflows float32"):
      relucomp.local_lipschitz(huge, np.ones(1, np.float32))
  with enable_x64(True):
    # ||1e200 * ones(2, 3)||_2 = 1e200 sqrt(6); ||ones(3, 1)||_2 = sqrt(3).
    np.testing.assert_allclose(float(relucomp.lipschitz_bound(params)),
                               1e200 * np.sqrt(18), rtol=1e-12)
    np.testing.assert_allclose(float(relucomp.lipschitz_bound(params, method="max_weight")),
                               1e200 * np.sqrt(2) * 3, rtol=1e-12)
    np.testing.assert_allclose(float(relucomp.local_lipschitz(params, np.ones(2))),
                               1e200 * np.sqrt(18), rtol=1e-12)


@pytest.mark.parametrize("half", [jnp.float16, jnp.bfloat16])
def test_sixteen_bit_weights_computed_in_float32(half):
  kernels, biases = _numpy_net(3, (2, 4, 4, 1), 1.0, False)
  params16 = _params(kernels, biases, half)
  params32 = [{k: v.astype(jnp.float32) for k, v in layer.items()} for layer in params16]
  x16 = jnp.asarray(np.random.default_rng(4).normal(size=(5, 2)), half)
  with enable_x64(False):
    for method in ("spectral", "max_weight"):
      got = relucomp.lipschitz_bound(params16, method=method)
      assert got.dtype == jnp.float32
      # 16-bit values are exact in float32: the same computation.
      assert float(got) == float(relucomp.lipschitz_bound(params32, method=method))
    local = relucomp.local_lipschitz(params16, x16)
    assert local.dtype == jnp.float32
    np.testing.assert_array_equal(local, relucomp.local_lipschitz(params32,
                                                                  x16.astype(jnp.float32)))


def test_empty_batches_and_empty_layers(dtype):
  kernels, biases = _numpy_net(5, (2, 3, 1), 1.0, False)
  params = _params(kernels, biases, dtype)
  assert relucomp.local_lipschitz(params, jnp.zeros((0, 2), dtype)).shape == (0,)
  assert relucomp.local_lipschitz(params, jnp.zeros((3, 0, 2), dtype)).shape == (3, 0)
  # A hidden layer of width 0: the network is constant.
  empty = [{"kernel": jnp.ones((2, 0), dtype), "bias": jnp.zeros(0, dtype)},
           {"kernel": jnp.ones((0, 1), dtype), "bias": jnp.ones(1, dtype)}]
  for method in ("spectral", "max_weight"):
    assert float(relucomp.lipschitz_bound(empty, method=method)) == 0.0
  assert float(relucomp.local_lipschitz(empty, jnp.ones(2, dtype))) == 0.0


def test_jitted_and_bad_method(dtype):
  kernels, biases = _numpy_net(6, (2, 4, 4, 1), 1.0, False)
  params = _params(kernels, biases, dtype)
  bound = jax.jit(functools.partial(relucomp.lipschitz_bound, method="max_weight"))
  # Under jit the same program runs (the checks are skipped): a few ulp.
  np.testing.assert_allclose(bound(params), relucomp.lipschitz_bound(params, method="max_weight"),
                             rtol=8 * np.finfo(dtype).eps)
  for bad in ("frobenius", "Spectral", None):
    with pytest.raises(ValueError, match="method must be one of"):
      relucomp.lipschitz_bound(params, method=bad)
