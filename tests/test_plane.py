"""Exact regions on planes and segments through networks of many inputs."""

from __future__ import annotations

from fractions import Fraction

import hypothesis.strategies as st
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given, settings

import relucomp
from relucomp import _plane
from relucomp import _regions
from _reference import numpy_preactivations
from _regions2d_reference import regions_2d as regions_2d_reference

EPS = np.finfo(np.float64).eps


# ---------------------------------------------------------------- helpers

def _random_net(rng, widths, *, scale=1.0):
  return [{"kernel": rng.normal(size=(a, b)) * scale / np.sqrt(a),
           "bias": rng.normal(size=b) * 0.5 * scale}
          for a, b in zip(widths[:-1], widths[1:])]


def _dyadic_net(rng, widths):
  """Weights k / 8 with small integers k: every product and sum below is exact."""
  return [{"kernel": rng.integers(-8, 9, (a, b)) / 8.0, "bias": rng.integers(-8, 9, b) / 8.0}
          for a, b in zip(widths[:-1], widths[1:])]


def _composed(params, points):
  """The network on the plane's coordinates, composed by plain NumPy."""
  axes = points[1:] - points[0]
  first = params[0]
  return [{"kernel": axes @ first["kernel"], "bias": points[0] @ first["kernel"] + first["bias"]}
          ] + list(params[1:])


def _sorted_patterns(patterns):
  full = np.concatenate(patterns, axis=1) if isinstance(patterns, list) else patterns
  return full[np.lexsort(full.T[::-1])]


def _interior_points(vertices, rng, per_region):
  """Random points halfway or more towards each polygon's vertex average."""
  weights = [rng.dirichlet(np.ones(len(p)), per_region) for p in vertices]
  return np.concatenate([(0.5 / len(p) + 0.5 * w) @ p for p, w in zip(vertices, weights)])


def _layer_values(params, x):
  """Every hidden pre-activation at ``x`` (float64 NumPy) with the sum of the
  absolute values of its terms."""
  pre = numpy_preactivations(params, x)
  inputs = [np.asarray(x, np.float64)] + [np.maximum(z, 0.0) for z in pre[:-2]]
  return [(z, np.abs(h) @ np.abs(layer["kernel"]) + np.abs(layer["bias"]))
          for z, h, layer in zip(pre[:-1], inputs, params[:-1])]


# ------------------------------------------- compensated products

def test_compensated_matmul_is_nearly_correctly_rounded(rng, monkeypatch):
  # Rows that cancel almost completely: the plain product loses most digits.
  n = 300
  a = rng.normal(size=(3, n)) * np.exp(rng.uniform(-20, 20, size=(3, n)))
  k = rng.normal(size=(n, 2))
  a[:, -1] = -(a[:, :-1] @ k[:-1, 0]) / k[-1, 0]       # column 0 sums to about zero
  got = _plane.compensated_matmul(a, k)
  plain = a @ k
  worst_plain = 0.0
  for i in range(3):
    for j in range(2):
      exact = sum(Fraction(float(a[i, t])) * Fraction(float(k[t, j])) for t in range(n))
      terms = float(np.abs(a[i]) @ np.abs(k[:, j]))
      # Dot2 bound: one rounding of the result plus (log2(n) eps)^2 of the terms.
      bound = EPS * abs(float(exact)) + (10 * EPS) ** 2 * terms * 4
      assert abs(Fraction(float(got[i, j])) - exact) <= Fraction(bound)
      worst_plain = max(worst_plain, abs(float(Fraction(float(plain[i, j])) - exact)) / terms)
  assert worst_plain > 1e-18       # the plain product's error is far larger (column 0)
  monkeypatch.setattr(_plane, "_CHUNK", 1000)          # one row per block: the same result
  np.testing.assert_array_equal(_plane.compensated_matmul(a, k), got)


# -------------------------------- 2 inputs: equal to regions_2d composed

@given(seed=st.integers(0, 2 ** 31 - 1),
       hidden=st.lists(st.integers(2, 8), min_size=1, max_size=3))
def test_two_inputs_equal_regions_2d_of_the_composed_network(seed, hidden):
  rng = np.random.default_rng(seed)
  widths = [2, *hidden, int(rng.integers(1, 3))]
  params = _dyadic_net(rng, widths)
  points = rng.integers(-3, 4, (3, 2)).astype(float)
  axes = points[1:] - points[0]
  assume(abs(np.linalg.det(axes)) > 0)
  plane = relucomp.plane_regions(params, points)
  # Dyadic weights and integer points: the composition is exact in float64,
  # so the composed network below is the very one the plane sees.
  composed = _composed(params, points)
  lo, hi = _plane.DEFAULT_LO, _plane.DEFAULT_HI
  direct = relucomp.regions_2d(composed, lo, hi)
  assert plane.count == direct.count
  np.testing.assert_array_equal(_sorted_patterns(plane.patterns),
                                _sorted_patterns(direct.patterns))
  # The independent NumPy enumeration agrees too.
  vertices, patterns, _, _ = regions_2d_reference(composed, lo, hi, _regions.value_rtol_for(params))
  assert len(vertices) == plane.count
  np.testing.assert_array_equal(_sorted_patterns(plane.patterns), _sorted_patterns(patterns))
  # The maps on the full input, pulled back onto the plane, are regions_2d's.
  order_p = np.lexsort(np.concatenate(plane.patterns, 1).T[::-1])
  order_d = np.lexsort(np.concatenate(direct.patterns, 1).T[::-1])
  # Both are sums of the same exact dyadic terms in another order (float64
  # roundoff of values of a few units): 1e-12 is thousands of ulps.
  np.testing.assert_allclose(plane.A[order_p] @ axes.T, direct.A[order_d], atol=1e-12)
  np.testing.assert_allclose(plane.c[order_p] + plane.A[order_p] @ points[0],
                             direct.c[order_d], atol=1e-12)
  # maps="plane": the maps in plane coordinates, those of regions_2d.
  flat = relucomp.plane_regions(params, points, maps="plane")
  order_f = np.lexsort(np.concatenate(flat.patterns, 1).T[::-1])
  np.testing.assert_array_equal(flat.A[order_f], direct.A[order_d])
  np.testing.assert_array_equal(flat.c[order_f], direct.c[order_d])


# ------------------------- many inputs: patterns and maps at interior points

@pytest.mark.parametrize("n_in, hidden", [(64, [24, 16]), (784, [16, 12, 8])])
def test_interior_points_have_the_region_pattern_and_map(x64, n_in, hidden):
  rng = np.random.default_rng(n_in)
  params = _random_net(rng, [n_in, *hidden, 3])
  points = rng.normal(size=(3, n_in))
  parts = relucomp.plane_regions(params, points)
  assert parts.count > 20 and parts.A.shape == (parts.count, 3, n_in)
  y = _interior_points(parts.vertices, rng, 2)
  owner = np.repeat(np.arange(parts.count), 2)
  x = points[0] + y @ (points[1:] - points[0])
  full = np.concatenate(parts.patterns, axis=1)[owner]
  # Library path (float64): activation_pattern and affine_map at the points.
  seen = np.concatenate([np.asarray(p) for p in relucomp.activation_pattern(params, x)], axis=1)
  # affine_map's cost grows with n_in^2 per point: a fixed subset of points.
  some = rng.choice(len(x), min(len(x), 40), replace=False)
  a_ref, c_ref = (np.asarray(v) for v in relucomp.affine_map(params, x[some]))
  # Which neurons are clearly away from zero at each point: |z| above 1e-6
  # of its terms. The enumeration may move a line by value_rtol = 1e-10 of
  # them, float64 evaluation by ~n_in eps ~ 1e-13: 1e-6 leaves a wide margin.
  values = _layer_values(params, x)
  clear = np.concatenate([np.abs(z) > 1e-6 * s for z, s in values], axis=1)
  np.testing.assert_array_equal(seen[clear], full[clear])
  decided = clear.all(axis=1)
  assert decided.mean() > 0.9           # nearly every sample is clear of all lines
  np.testing.assert_array_equal(seen[decided], full[decided])
  # Same pattern, same map: both are products of the same kernels, so they
  # differ by roundoff relative to the product of their absolute values.
  abs_a, abs_c = _plane.full_maps(
      [(np.abs(p["kernel"]), np.abs(p["bias"])) for p in params],
      [full[:, sum(hidden[:l]):sum(hidden[:l + 1])] for l in range(len(hidden))])
  tol = 64 * (n_in + sum(hidden)) * EPS
  sel = some[decided[some]]
  assert sel.size > 30
  ref_sel = decided[some]
  assert np.all(np.abs(a_ref[ref_sel] - parts.A[owner][sel]) <= tol * abs_a[sel] + 1e-300)
  assert np.all(np.abs(c_ref[ref_sel] - parts.c[owner][sel]) <= tol * abs_c[sel] + 1e-300)
  # And the map is the network: f(x) = A x + c at every sample.
  out = numpy_preactivations(params, x)[-1]
  mapped = np.einsum("noi,ni->no", parts.A[owner], x) + parts.c[owner]
  np.testing.assert_allclose(mapped[decided], out[decided], rtol=1e-9, atol=1e-9)


@settings(max_examples=15)
@given(seed=st.integers(0, 2 ** 31 - 1), n_in=st.integers(3, 40),
       hidden=st.lists(st.integers(2, 12), min_size=1, max_size=3),
       spread=st.sampled_from([0.1, 1.0, 4.0]))
def test_random_networks_patterns_and_maps_at_interior_points(seed, n_in, hidden, spread):
  # Hypothesis over networks and planes, checked by a NumPy forward pass.
  rng = np.random.default_rng(seed)
  params = _random_net(rng, [n_in, *hidden, 2])
  points = rng.normal(size=n_in) + spread * rng.normal(size=(3, n_in))
  parts = relucomp.plane_regions(params, points)
  y = _interior_points(parts.vertices, rng, 2)
  owner = np.repeat(np.arange(parts.count), 2)
  x = points[0] + y @ (points[1:] - points[0])
  values = _layer_values(params, x)
  seen = np.concatenate([z > 0 for z, _ in values], axis=1)
  clear = np.concatenate([np.abs(z) > 1e-6 * s for z, s in values], axis=1)   # as above
  full = np.concatenate(parts.patterns, axis=1)[owner]
  np.testing.assert_array_equal(seen[clear], full[clear])
  decided = clear.all(axis=1)
  out = numpy_preactivations(params, x)[-1]
  mapped = np.einsum("noi,ni->no", parts.A[owner], x) + parts.c[owner]
  # Values of a few units (inputs ~ spread, weights ~ 1/sqrt(fan_in)):
  # float64 roundoff is ~1e-14, 1e-9 leaves a wide margin.
  np.testing.assert_allclose(mapped[decided], out[decided], rtol=1e-9, atol=1e-9 * (1 + spread))


def test_area_covers_the_rectangle_and_regions_are_distinct(rng):
  params = _random_net(rng, [20, 12, 12, 2])
  points = rng.normal(size=(3, 20))
  lo, hi = (-1.0, -0.5), (2.0, 1.5)
  parts = relucomp.plane_regions(params, points, lo=lo, hi=hi)
  x, y = (np.concatenate([p[:, i] for p in parts.vertices]) for i in (0, 1))
  assert x.min() == lo[0] and x.max() == hi[0] and y.min() == lo[1] and y.max() == hi[1]
  area = sum(0.5 * np.sum(p[:, 0] * np.roll(p[:, 1], -1) - np.roll(p[:, 0], -1) * p[:, 1])
             for p in parts.vertices)
  np.testing.assert_allclose(area, 3.0 * 2.0, rtol=1e-12)
  full = np.concatenate(parts.patterns, axis=1)
  assert len(np.unique(full, axis=0)) == parts.count


# ------------------------------------------- conditioning: long and short axes

@pytest.mark.parametrize("power", [-30, 24])
def test_scaled_axes_give_the_same_partition(rng, power):
  # Axes scaled by s = 2^power and the rectangle by 1/s: the same part of
  # the same plane. Dyadic points keep every sum and difference exact and
  # scaling by a power of two commutes with rounding, so the composed
  # coefficients scale exactly and the partition must be identical.
  params = _random_net(rng, [32, 16, 16, 1])
  origin = rng.integers(-16, 17, 32) / 4.0
  axes = rng.integers(-8, 9, (2, 32)) / 8.0
  s = 2.0 ** power
  base = relucomp.plane_regions(params, np.vstack([origin, origin + axes]))
  scaled = np.vstack([origin, origin + s * axes])
  assert np.array_equal(scaled[1:] - origin, s * axes)
  lo = np.asarray(_plane.DEFAULT_LO) / s
  hi = np.asarray(_plane.DEFAULT_HI) / s
  other = relucomp.plane_regions(params, scaled, lo=lo, hi=hi)
  assert base.count > 10 and other.count == base.count
  np.testing.assert_array_equal(_sorted_patterns(other.patterns), _sorted_patterns(base.patterns))
  np.testing.assert_array_equal(other.A, base.A)


def test_short_axes_far_from_the_origin_match_the_exactly_composed_network(rng):
  # A tiny triangle (axes 1e-7) around a point of norm ~100: the composed
  # bias cancels almost completely where a line crosses. The composition
  # must be the correctly rounded one (computed here with rationals).
  n_in = 48
  params = _random_net(rng, [n_in, 24, 12, 1])
  centre = 15.0 * rng.normal(size=n_in)
  # Move the centre onto neuron 0's zero so that lines cross the triangle.
  k0, b0 = params[0]["kernel"][:, 0], params[0]["bias"][0]
  centre -= (centre @ k0 + b0) / (k0 @ k0) * k0
  points = centre + 1e-7 * rng.normal(size=(3, n_in))
  parts = relucomp.plane_regions(params, points)
  assert parts.count >= 2
  rows = np.vstack([points[1:] - points[0], points[0]])
  ext = np.vstack([params[0]["kernel"], params[0]["bias"][None]])
  exact = np.array([[float(sum(Fraction(float(r[t])) * Fraction(float(ext[t, j]))
                               for t in range(n_in) if r[t] != 0)
                           + (Fraction(float(ext[n_in, j])) if i == 2 else 0))
                     for j in range(ext.shape[1])] for i, r in enumerate(rows)])
  composed = [{"kernel": exact[:2], "bias": exact[2]}] + params[1:]
  direct = relucomp.regions_2d(composed, _plane.DEFAULT_LO, _plane.DEFAULT_HI)
  assert parts.count == direct.count
  np.testing.assert_array_equal(_sorted_patterns(parts.patterns), _sorted_patterns(direct.patterns))
  got = _plane.compose_first_layer(_regions.host_layers(params), points[0], points[1:] - points[0])
  # The slopes: a plain product, within n_in eps of their terms' absolute sum.
  slope_terms = np.abs(rows[:2]) @ np.abs(ext[:n_in])
  assert np.all(np.abs(got[0]["kernel"] - exact[:2]) <= n_in * EPS * slope_terms)
  # Dot2's bound: one rounding plus (log2(n) eps)^2 of the terms' absolute sum.
  terms = np.abs(rows[2]) @ np.abs(ext[:n_in]) + np.abs(ext[n_in])
  assert np.all(np.abs(got[0]["bias"] - exact[2]) <= 2 * EPS * np.abs(exact[2])
                + (8 * EPS) ** 2 * terms)


# ------------------------------------------------------- dtypes, jax arrays

def test_jax_params_of_either_dtype(dtype, rng):
  params64 = _random_net(rng, [12, 10, 10, 2])
  params = [{k: jnp.asarray(v, dtype) for k, v in layer.items()} for layer in params64]
  points = jnp.asarray(rng.normal(size=(3, 12)), dtype)
  parts = relucomp.plane_regions(params, points)
  # The given weights' dtype sets the tolerance; the values are converted.
  rounded = [{k: np.asarray(v, np.float64) for k, v in layer.items()} for layer in params]
  again = relucomp.plane_regions(rounded, np.asarray(points, np.float64),
                                 value_rtol=_regions.value_rtol_for(params))
  assert parts.count == again.count
  np.testing.assert_array_equal(_sorted_patterns(parts.patterns), _sorted_patterns(again.patterns))
  assert parts.A.dtype == np.float64


def test_network_without_hidden_layers_is_one_region(rng):
  params = [{"kernel": rng.normal(size=(5, 2)), "bias": rng.normal(size=2)}]
  parts = relucomp.plane_regions(params, rng.normal(size=(3, 5)))
  assert parts.count == 1 and parts.patterns == []
  np.testing.assert_array_equal(parts.A[0], params[0]["kernel"].T)
  np.testing.assert_array_equal(parts.c[0], params[0]["bias"])


# ------------------------------------------------------------ segments

@settings(max_examples=15)
@given(seed=st.integers(0, 2 ** 31 - 1), hidden=st.lists(st.integers(2, 10), min_size=1,
                                                          max_size=3))
def test_segment_of_a_one_input_network_is_linear_pieces_1d(seed, hidden):
  rng = np.random.default_rng(seed)
  params = _dyadic_net(rng, [1, *hidden, 2])
  a, b = sorted(rng.integers(-4, 5, 2).astype(float))
  assume(a < b)
  pieces = relucomp.segment_pieces(params, [a], [b])
  direct = relucomp.linear_pieces_1d(params, a, b)
  assert pieces.count == direct.count
  # t = (x - a) / (b - a); slopes scale by (b - a). Dyadic weights and
  # integer ends: every value here is exact up to a few roundings.
  np.testing.assert_allclose(a + pieces.breakpoints * (b - a), direct.breakpoints, atol=1e-12)
  np.testing.assert_allclose(pieces.slopes, direct.slopes * (b - a), atol=1e-12)


def test_segment_pieces_in_many_inputs_match_the_network(rng):
  params = _random_net(rng, [100, 32, 16, 3])
  start, end = rng.normal(size=(2, 100)) * 2
  pieces = relucomp.segment_pieces(params, start, end, merge=False)
  assert pieces.count > 5 and np.all(np.diff(pieces.breakpoints) > 0)
  knots = np.concatenate([[0.0], pieces.breakpoints, [1.0]])
  t = knots[:-1] + rng.uniform(0.1, 0.9, knots.size - 1) * np.diff(knots)
  x = start + t[:, None] * (end - start)
  out = numpy_preactivations(params, x)[-1]
  # float64 evaluation of terms of size ~10: 1e-9 is far above its error.
  np.testing.assert_allclose(pieces.slopes * t[:, None] + pieces.intercepts, out, atol=1e-9)
  # Between two knots the pattern is constant, and it changes at each knot.
  patterns = np.concatenate([z > 0 for z in numpy_preactivations(params, x)[:-1]], axis=1)
  assert np.all(np.any(patterns[1:] != patterns[:-1], axis=1))
  merged = relucomp.segment_pieces(params, start, end)
  assert merged.count <= pieces.count


# -------------------------------------------------------------- bad input

def test_bad_input(rng, monkeypatch):
  params = _random_net(rng, [6, 5, 1])
  points = rng.normal(size=(3, 6))
  with pytest.raises(ValueError, match=r"points must have shape \(3, n_in\) = \(3, 6\)"):
    relucomp.plane_regions(params, points[:2])
  with pytest.raises(ValueError, match=r"points must have shape"):
    relucomp.plane_regions(params, points[:, :5])
  with pytest.raises(ValueError, match="points must be finite"):
    relucomp.plane_regions(params, np.where(np.eye(3, 6) > 0, np.nan, points))
  with pytest.raises(ValueError, match=r"points\[0\] and points\[2\] coincide"):
    relucomp.plane_regions(params, points[[0, 1, 0]])
  line = np.stack([points[0], points[1], 3 * points[1] - 2 * points[0]])
  with pytest.raises(ValueError, match="points must not be collinear"):
    relucomp.plane_regions(params, line)
  line32 = line.astype(np.float32)      # collinear up to float32 rounding
  with pytest.raises(ValueError, match="points must not be collinear"):
    relucomp.plane_regions(params, line32)
  with pytest.raises(ValueError, match="points must be an array of numbers"):
    relucomp.plane_regions(params, "abc")
  bad = [dict(layer) for layer in params]
  bad[1] = {"kernel": np.full((5, 1), np.inf), "bias": np.zeros(1)}
  with pytest.raises(ValueError, match=r"params\[1\]\['kernel'\] must be finite"):
    relucomp.plane_regions(bad, points)
  with pytest.raises(ValueError, match=r"lo must be smaller than hi"):
    relucomp.plane_regions(params, points, lo=(1.0, 0.0), hi=(0.0, 1.0))
  with pytest.raises(ValueError, match="value_rtol"):
    relucomp.plane_regions(params, points, value_rtol=2.0)
  with pytest.raises(ValueError, match="overflow"):
    relucomp.plane_regions(params, points * 1e300)
  with pytest.raises(ValueError, match="maps must be one of"):
    relucomp.plane_regions(params, points, maps="input")
  monkeypatch.setattr(_plane, "FULL_MAPS_MAX_BYTES", 100)
  with pytest.raises(ValueError, match="maps='full' would need .* pass maps='plane'"):
    relucomp.plane_regions(params, points)
  assert relucomp.plane_regions(params, points, maps="plane").A.shape[-1] == 2
  monkeypatch.undo()
  with pytest.raises(ValueError, match="end must differ from start"):
    relucomp.segment_pieces(params, points[0], points[0].copy())
  with pytest.raises(ValueError, match=r"start must have shape \(6,\)"):
    relucomp.segment_pieces(params, points[:2], points[1])
  with pytest.raises(ValueError, match="end must be finite"):
    relucomp.segment_pieces(params, points[0], np.full(6, np.nan))
  # The inputs are not modified.
  before = points.copy()
  relucomp.plane_regions(params, points)
  np.testing.assert_array_equal(points, before)
