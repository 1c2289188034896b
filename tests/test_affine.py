"""Patterns, affine maps, region polytopes, atoms and Lipschitz constants."""

from __future__ import annotations

import itertools

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings

import relucomp
from _reference import numpy_patterns
from conftest import enable_x64


def _random_net(seed, widths, dtype=np.float32):
  rng = np.random.default_rng(seed)
  return [{"kernel": jnp.asarray(rng.normal(size=(a, b)) / np.sqrt(a), dtype),
           "bias": jnp.asarray(rng.normal(size=b) * 0.5, dtype)}
          for a, b in zip(widths[:-1], widths[1:])]


affine_jit = jax.jit(relucomp.affine_map)


@pytest.mark.parametrize("jit", [False, True])
def test_affine_map_matches_jacobian_and_values(dtype, jit):
  fn = affine_jit if jit else relucomp.affine_map
  tol = 1e-4 if dtype == np.float32 else 1e-11
  for seed, widths in [(0, [3, 8, 8, 2]), (2, [4, 6, 6, 6, 3])]:
    params = _random_net(seed, widths, dtype)
    xs = jnp.asarray(np.random.default_rng(seed + 10).normal(size=(6, widths[0])), dtype)
    a, c = fn(params, xs)
    assert a.shape == (6, widths[-1], widths[0]) and a.dtype == dtype
    assert c.shape == (6, widths[-1])
    f = lambda y: relucomp.mlp_apply(params, y)
    np.testing.assert_allclose(a, jax.vmap(jax.jacfwd(f))(xs), rtol=tol, atol=tol)
    np.testing.assert_allclose(jnp.einsum("boi,bi->bo", a, xs) + c, f(xs), rtol=tol, atol=tol)
    single_a, single_c = fn(params, xs[0])
    np.testing.assert_allclose(single_a, a[0], rtol=tol, atol=tol)
    np.testing.assert_allclose(single_c, c[0], rtol=tol, atol=tol)


def test_affine_map_is_constant_on_a_region_of_the_compositional_network(x64):
  peaks = jnp.asarray([0.3, 0.6, 0.45, 0.5])
  params = relucomp.compositional_mlp(peaks, relucomp.enforced_scales(peaks, 0.2))
  pieces = relucomp.linear_pieces_1d(params, 0.0, 1.0)
  edges = np.concatenate([[0.0], pieces.breakpoints, [1.0]])
  mids = jnp.asarray((edges[:-1] + edges[1:]) / 2)[:, None]
  a, c = relucomp.affine_map(params, mids)
  np.testing.assert_allclose(a[:, 0, 0], pieces.slopes[:, 0], atol=1e-12)
  np.testing.assert_allclose(c[:, 0], pieces.intercepts[:, 0], atol=1e-12)


def test_activation_pattern(dtype):
  params = _random_net(3, [3, 7, 5, 2], dtype)
  xs = jnp.asarray(np.random.default_rng(4).normal(size=(50, 3)), dtype)
  pattern = relucomp.activation_pattern(params, xs)
  assert [p.shape for p in pattern] == [(50, 7), (50, 5)]
  assert all(p.dtype == jnp.bool_ for p in pattern)
  np.testing.assert_array_equal(np.concatenate(pattern, axis=-1), numpy_patterns(params, xs))
  jitted = jax.jit(relucomp.activation_pattern)(params, xs)
  np.testing.assert_array_equal(np.concatenate(jitted, axis=-1), numpy_patterns(params, xs))


@settings(max_examples=10)
@given(seed=st.integers(0, 10 ** 6), hidden=st.lists(st.integers(1, 6), min_size=1, max_size=3))
def test_region_polytope_is_the_activation_region(seed, hidden):
  with enable_x64():
    params = _random_net(seed, [2, *hidden, 1], np.float64)
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=2))
    g, h = relucomp.region_polytope(params, x)
    assert g.shape == (sum(hidden), 2) and h.shape == (sum(hidden),)
    g, h = np.asarray(g), np.asarray(h)
    assert np.all(g @ np.asarray(x) <= h + 1e-12)
    ys = np.asarray(x) + rng.normal(size=(4000, 2)) * rng.choice([0.01, 0.1, 1.0], size=(4000, 1))
    slack = ys @ g.T - h                      # <= 0 inside
    same = np.all(numpy_patterns(params, ys) == numpy_patterns(params, np.asarray(x)), axis=1)
    inside = np.all(slack < -1e-9, axis=1)
    outside = np.any(slack > 1e-9, axis=1)
    assert np.all(same[inside])
    assert not np.any(same[outside])


def _brute_force_coefficients(params, x):
  """Path sums by enumerating every path through the hidden layers."""
  kernels = [np.asarray(p["kernel"], np.float64) for p in params]
  pattern = relucomp.activation_pattern(params, x)
  d = [np.asarray(p) for p in pattern]
  n_first, n_last = kernels[0].shape[1], kernels[-1].shape[0]
  coeff = np.zeros((n_last, n_first))
  middle = [range(k.shape[1]) for k in kernels[1:-1]]
  for q in range(n_first):
    for path in itertools.product(*middle):
      nodes = (q, *path)
      if not all(d[l][n] for l, n in enumerate(nodes)):
        continue
      weight = np.prod([kernels[l + 1][nodes[l], nodes[l + 1]] for l in range(len(nodes) - 1)])
      coeff[nodes[-1], q] += weight
  return coeff


@pytest.mark.parametrize("widths", [[2, 5, 3], [3, 4, 3, 2], [2, 3, 4, 3, 2]])
def test_atoms_sum_to_a_with_path_coefficients(widths, x64):
  params = _random_net(sum(widths), widths, np.float64)
  x = jnp.asarray(np.random.default_rng(7).normal(size=widths[0]))
  dec = relucomp.atoms(params, x)
  assert dec.atoms.shape == (widths[-2], widths[1], widths[-1], widths[0])
  assert dec.coefficients.shape == (widths[-2], widths[1])
  # Every atom has rank one.
  flat = np.asarray(dec.atoms).reshape(-1, widths[-1], widths[0])
  assert np.all(np.linalg.matrix_rank(flat, tol=1e-10) <= 1)
  a, _ = relucomp.affine_map(params, x)
  np.testing.assert_allclose(jnp.einsum("pq,pqoi->oi", dec.coefficients, dec.atoms), a,
                             atol=1e-12)
  np.testing.assert_allclose(dec.coefficients, _brute_force_coefficients(params, x), atol=1e-12)
  if len(widths) == 3:
    d = np.asarray(relucomp.activation_pattern(params, x)[0], np.float64)
    np.testing.assert_array_equal(dec.coefficients, np.diag(d))
  # Batched inputs give batched coefficients and the same atoms.
  xs = jnp.stack([x, -x])
  batched = relucomp.atoms(params, xs)
  assert batched.coefficients.shape == (2, widths[-2], widths[1])
  np.testing.assert_allclose(batched.coefficients[0], dec.coefficients, atol=1e-12)


def test_lipschitz_bound_and_local_constant(x64):
  params = _random_net(11, [3, 8, 8, 2], np.float64)
  rng = np.random.default_rng(12)
  bound = float(relucomp.lipschitz_bound(params))
  expected = np.prod([np.linalg.norm(np.asarray(p["kernel"]), 2) for p in params])
  np.testing.assert_allclose(bound, expected, rtol=1e-12)
  xs = jnp.asarray(rng.normal(size=(200, 3)))
  local = np.asarray(relucomp.local_lipschitz(params, xs))
  assert local.shape == (200,)
  assert np.all(local <= bound * (1 + 1e-12))
  # Sampled difference quotients never exceed the bound.
  ys = xs + jnp.asarray(rng.normal(size=(200, 3)))
  quot = (np.linalg.norm(relucomp.mlp_apply(params, xs) - relucomp.mlp_apply(params, ys), axis=1)
          / np.linalg.norm(xs - ys, axis=1))
  assert np.all(quot <= bound)
  # On the region, the top right-singular direction attains ||A||_2.
  for x, lip in zip(xs[:5], local[:5]):
    a, _ = relucomp.affine_map(params, x)
    _, _, vt = np.linalg.svd(np.asarray(a))
    g, h = map(np.asarray, relucomp.region_polytope(params, x))
    slack = h - g @ np.asarray(x)
    step = 1e-3 * max(np.min(slack[slack > 0]) / (np.abs(g @ vt[0]).max() + 1e-300), 1e-12)
    y = x + step * vt[0]
    ratio = np.linalg.norm(relucomp.mlp_apply(params, y) - relucomp.mlp_apply(params, x)) / step
    np.testing.assert_allclose(ratio, lip, rtol=1e-6)
  # For a network without hidden layers both are the kernel's norm.
  linear = [{"kernel": jnp.asarray([[3.0], [4.0]]), "bias": jnp.zeros(1)}]
  assert float(relucomp.lipschitz_bound(linear)) == pytest.approx(5.0)
  assert float(relucomp.local_lipschitz(linear, jnp.ones(2))) == pytest.approx(5.0)


def test_lipschitz_jitted(dtype):
  params = _random_net(5, [2, 4, 1], dtype)
  x = jnp.ones((3, 2), dtype)
  np.testing.assert_allclose(jax.jit(relucomp.local_lipschitz)(params, x),
                             relucomp.local_lipschitz(params, x), rtol=1e-6)
  np.testing.assert_allclose(jax.jit(relucomp.lipschitz_bound)(params),
                             relucomp.lipschitz_bound(params), rtol=1e-6)


def test_bad_input():
  params = _random_net(0, [2, 3, 1])
  with pytest.raises(ValueError, match="x must have shape"):
    relucomp.affine_map(params, jnp.ones(3))
  with pytest.raises(ValueError, match="x must be finite"):
    relucomp.activation_pattern(params, jnp.array([jnp.nan, 0.0]))
  bad = [dict(layer) for layer in params]
  bad[1] = {"kernel": bad[1]["kernel"].at[0, 0].set(jnp.inf), "bias": bad[1]["bias"]}
  for fn in (relucomp.affine_map, relucomp.region_polytope, relucomp.atoms,
             relucomp.local_lipschitz):
    with pytest.raises(ValueError, match=r"params\[1\]\['kernel'\] must be finite"):
      fn(bad, jnp.ones(2))
  with pytest.raises(ValueError, match=r"params\[1\]\['kernel'\] must be finite"):
    relucomp.lipschitz_bound(bad)
  with pytest.raises(ValueError, match="consecutive layers must chain"):
    relucomp.affine_map([params[0], params[0]], jnp.ones(2))
  linear = [{"kernel": jnp.ones((2, 1)), "bias": jnp.zeros(1)}]
  for fn in (relucomp.region_polytope, relucomp.atoms):
    with pytest.raises(ValueError, match="params must have at least 2 layers"):
      fn(linear, jnp.ones(2))
