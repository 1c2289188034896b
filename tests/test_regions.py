"""Exact 1-D region enumeration: linear_pieces_1d."""

from __future__ import annotations

import copy

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings

import relucomp
from relucomp import _regions
from relucomp import _regions2d_kernel as _kernel
from _reference import exact_regions_2d, numpy_patterns, numpy_preactivations
from _regions2d_reference import regions_2d as regions_2d_reference
from conftest import enable_x64


# ---------------------------------------------------------------- helpers

def _compositional(peaks, amplitude, *, slope=1.0):
  with enable_x64():
    peaks = jnp.asarray(peaks, jnp.float64)
    scales = relucomp.enforced_scales(peaks, amplitude)
    return relucomp.compositional_mlp(peaks, scales, slope=slope), peaks, scales


def _wave_breakpoints(peaks, d):
  """Breakpoints of W_d on [0, 1] by inverting the triangles piece by piece.

  Independent of any network: W_{k-1} is monotone between consecutive
  points of ``knots``, from 0 to 1 or 1 to 0, and ``W_k`` gains one knot on
  each such piece, where ``W_{k-1} = a_k``.
  """
  knots = np.array([0.0, 1.0])
  values = np.array([0.0, 1.0])              # W_0(x) = x at the knots
  for k in range(d):
    a = peaks[k]
    x0, x1 = knots[:-1], knots[1:]
    v0, v1 = values[:-1], values[1:]
    cut = x0 + (a - v0) / (v1 - v0) * (x1 - x0)
    new_knots = np.empty(2 * knots.size - 1)
    new_knots[0::2] = knots
    new_knots[1::2] = cut
    new_values = np.empty_like(new_knots)
    new_values[0::2] = 0.0                   # T_a(0) = T_a(1) = 0
    new_values[1::2] = 1.0                   # T_a(a) = 1
    knots, values = new_knots, new_values
  return knots[1:-1]


def _random_net(rng, widths, *, scale=1.0):
  layers = []
  for n_in, n_out in zip(widths[:-1], widths[1:]):
    layers.append({
        "kernel": rng.normal(size=(n_in, n_out)) * scale / np.sqrt(n_in),
        "bias": rng.normal(size=n_out) * scale,
    })
  return layers


def _forward(params, x):
  with enable_x64():
    p64 = [{k: jnp.asarray(v, jnp.float64) for k, v in layer.items()} for layer in params]
    return np.asarray(relucomp.mlp_apply(p64, jnp.asarray(x, jnp.float64)[:, None]))


def _evaluate(pieces, x):
  k = np.searchsorted(pieces.breakpoints, x, side="right")
  return pieces.slopes[k] * x[:, None] + pieces.intercepts[k]


peak_lists = st.integers(1, 10).flatmap(
    lambda d: st.lists(st.floats(0.2, 0.8), min_size=d + 1, max_size=d + 1))


# ------------------------------------------------- compositional networks

@settings(max_examples=12)
@given(peaks=peak_lists, amplitude=st.sampled_from([0.3, -0.3, 1.0, -0.05]))
def test_compositional_has_two_to_the_d_pieces(peaks, amplitude):
  params, peaks64, scales = _compositional(peaks, amplitude)
  d = len(peaks) - 1
  merged = relucomp.linear_pieces_1d(params, 0.0, 1.0)
  regions = relucomp.linear_pieces_1d(params, 0.0, 1.0, merge=False)
  assert merged.count == regions.count == 2 ** d
  np.testing.assert_allclose(merged.breakpoints, _wave_breakpoints(np.asarray(peaks64), d),
                             rtol=0, atol=1e-12)
  x = np.linspace(0.0, 1.0, 1001)
  with enable_x64():
    closed = np.asarray(relucomp.compositional(jnp.asarray(x), peaks64, scales))
  np.testing.assert_allclose(_evaluate(merged, x)[:, 0], closed, rtol=0, atol=1e-12)


@pytest.mark.parametrize("d, amplitude, seed", [(16, -0.4, 1), (20, 0.25, 2), (20, -0.7, 3)])
def test_compositional_deep(d, amplitude, seed):
  peaks = np.random.default_rng(seed).uniform(0.2, 0.8, d + 1)
  params, _, _ = _compositional(peaks, amplitude)
  pieces = relucomp.linear_pieces_1d(params, 0.0, 1.0)
  assert pieces.count == 2 ** d
  assert relucomp.linear_pieces_1d(params, 0.0, 1.0, merge=False).count == 2 ** d
  assert np.all(np.diff(pieces.breakpoints) > 0)
  if d <= 16:
    np.testing.assert_allclose(pieces.breakpoints, _wave_breakpoints(peaks, d),
                               rtol=0, atol=1e-11)


def test_compositional_zero_touch_at_origin_does_not_count():
  # t_1 has pre-activation exactly 0 at x = 0: a sampled pattern count sees
  # 2^d + 1 patterns on [0, 1], the exact count 2^d.
  params, _, _ = _compositional([0.3, 0.6, 0.45, 0.55, 0.4], 0.25)
  assert relucomp.linear_pieces_1d(params, 0.0, 1.0, merge=False).count == 16
  assert len(np.unique(numpy_patterns(params, np.linspace(0, 1, 4099)[:, None]), axis=0)) == 17
  # Outside [0, 1] the network is a line on each side: one more piece each.
  assert relucomp.linear_pieces_1d(params, -0.5, 1.5).count == 18


def test_compositional_float32_params_are_converted(dtype):
  with enable_x64(dtype == np.float64):
    peaks = jnp.asarray([0.4, 0.6, 0.5, 0.3, 0.55], dtype)
    params = relucomp.compositional_mlp(peaks, relucomp.enforced_scales(peaks, 0.3))
    assert params[0]["kernel"].dtype == dtype
    before = copy.deepcopy([{k: np.asarray(v) for k, v in p.items()} for p in params])
    pieces = relucomp.linear_pieces_1d(params, 0.0, 1.0)
  assert pieces.breakpoints.dtype == np.float64
  knots = _wave_breakpoints(np.asarray(peaks, np.float64), 4)
  nearest = np.abs(pieces.breakpoints[:, None] - knots[None, :]).min(axis=1)
  # Every knot of W_4 is found and nothing else: float32 weights break the
  # exact cancellation at the valleys, but the dtype-aware zero tolerance
  # treats the residues (slivers ~1e-8 wide) as touches.
  assert np.abs(knots[:, None] - pieces.breakpoints[None, :]).min(axis=1).max() < 1e-6
  assert nearest.max() < 1e-6
  assert pieces.count == 16
  x = np.linspace(0.0, 1.0, 999)
  atol = 1e-12 if dtype == np.float64 else 1e-6
  np.testing.assert_allclose(_evaluate(pieces, x), _forward(before, x), atol=atol)
  # With float64's tolerance forced, the rounded network's slivers appear and
  # the pieces reproduce it to float64 accuracy.
  fine = relucomp.linear_pieces_1d(params, 0.0, 1.0, value_rtol=1e-10)
  assert fine.count >= 16
  np.testing.assert_allclose(_evaluate(fine, x), _forward(before, x), atol=1e-12)
  for layer, saved in zip(params, before):
    np.testing.assert_array_equal(np.asarray(layer["kernel"]), saved["kernel"])


# ---------------------------------------------- random networks, sampling

@settings(max_examples=15)
@given(seed=st.integers(0, 2 ** 31 - 1),
       hidden=st.lists(st.integers(1, 8), min_size=1, max_size=4),
       n_out=st.integers(1, 3))
def test_random_networks_against_dense_sampling(seed, hidden, n_out):
  rng = np.random.default_rng(seed)
  params = _random_net(rng, [1, *hidden, n_out])
  lo, hi = -3.0, 2.5
  regions = relucomp.linear_pieces_1d(params, lo, hi, merge=False)
  pieces = relucomp.linear_pieces_1d(params, lo, hi)
  assert regions.slopes.shape == (regions.count, n_out)
  assert pieces.intercepts.shape == (pieces.count, n_out)
  assert len(regions.breakpoints) == regions.count - 1
  assert np.all(np.diff(regions.breakpoints) > 0)
  assert np.all((regions.breakpoints > lo) & (regions.breakpoints < hi))
  assert pieces.count <= regions.count
  assert set(pieces.breakpoints.tolist()) <= set(regions.breakpoints.tolist())

  # Independent check by sampling: on a grid, a bracket holding no exact
  # breakpoint shows no pattern change; one holding exactly one shows one.
  grid = np.linspace(lo, hi, 20001)
  changed = np.any(numpy_patterns(params, grid[:, None])[1:] != numpy_patterns(params, grid[:, None])[:-1], axis=1)
  per_bracket = np.histogram(regions.breakpoints, bins=grid)[0]
  assert not np.any(changed & (per_bracket == 0))
  assert np.all(changed[per_bracket == 1])

  # The affine maps reproduce the network everywhere.
  values = _forward(params, grid)
  np.testing.assert_allclose(_evaluate(pieces, grid), values, rtol=1e-9, atol=1e-9)
  np.testing.assert_allclose(_evaluate(regions, grid), values, rtol=1e-9, atol=1e-9)

  # Slopes of the linear pieces by finite differences inside wide pieces.
  edges = np.concatenate([[lo], pieces.breakpoints, [hi]])
  wide = np.flatnonzero(np.diff(edges) > 1e-3)
  a = edges[wide] + 0.25 * np.diff(edges)[wide]
  b = edges[wide] + 0.75 * np.diff(edges)[wide]
  fd = (_forward(params, b) - _forward(params, a)) / (b - a)[:, None]
  np.testing.assert_allclose(pieces.slopes[wide], fd, rtol=1e-6, atol=1e-8)
  # Neighbouring linear pieces really differ.
  if pieces.count > 1:
    assert np.all(np.any(pieces.slopes[1:] != pieces.slopes[:-1], axis=1))


# ------------------------------------------------- hand-built networks

def _net(kernels, biases):
  return [{"kernel": np.asarray(k, np.float64), "bias": np.asarray(b, np.float64)}
          for k, b in zip(kernels, biases)]


def test_merge_joins_equal_affine_maps():
  # relu(x) - relu(-x) = x: two activation regions, one linear piece.
  params = _net([[[1.0, -1.0]], [[1.0], [-1.0]]], [[0.0, 0.0], [0.0]])
  assert relucomp.linear_pieces_1d(params, -1.0, 1.0, merge=False).count == 2
  line = relucomp.linear_pieces_1d(params, -1.0, 1.0)
  assert line.count == 1 and line.breakpoints.size == 0
  np.testing.assert_allclose(line.slopes, [[1.0]])
  np.testing.assert_allclose(line.intercepts, [[0.0]], atol=1e-15)


def test_merge_with_a_dead_downstream_neuron():
  # The kink of relu(x - 0.5) only feeds a neuron that is never active.
  params = _net([[[1.0, 1.0]], [[0.0, 1.0], [-1.0, 0.0]], [[1.0], [1.0]]],
                [[0.0, -0.5], [-10.0, 0.0], [0.0]])
  regions = relucomp.linear_pieces_1d(params, 0.0, 1.0, merge=False)
  assert regions.count == 2
  np.testing.assert_allclose(regions.breakpoints, [0.5])
  assert relucomp.linear_pieces_1d(params, 0.0, 1.0).count == 1


def test_several_outputs_keep_a_breakpoint_any_output_sees():
  params = _net([[[1.0, -1.0]], [[1.0, 1.0], [-1.0, 0.0]]], [[0.0, 0.0], [0.0, 0.0]])
  # Output 0 is x (no kink), output 1 is relu(x) (kink at 0).
  pieces = relucomp.linear_pieces_1d(params, -2.0, 2.0)
  assert pieces.count == 2
  np.testing.assert_allclose(pieces.slopes, [[1.0, 0.0], [1.0, 1.0]])


def test_touching_zero_at_an_end_does_not_count():
  params = _net([[[1.0]], [[1.0]]], [[0.0], [0.0]])
  assert relucomp.linear_pieces_1d(params, 0.0, 1.0, merge=False).count == 1
  assert relucomp.linear_pieces_1d(params, -1.0, 0.0, merge=False).count == 1
  assert relucomp.linear_pieces_1d(params, -1.0, 1.0, merge=False).count == 2


def test_identically_zero_neuron_is_inactive():
  params = _net([[[0.0, 1.0]], [[5.0], [1.0]]], [[0.0, 0.0], [0.0]])
  pieces = relucomp.linear_pieces_1d(params, -1.0, 1.0, merge=False)
  assert pieces.count == 2
  np.testing.assert_allclose(pieces.slopes[:, 0], [0.0, 1.0])


def test_tiny_neurons_are_resolved_relative_to_their_own_scale():
  # A neuron carrying values ~1e-13 next to one carrying ~1: its crossing
  # at 0.3 is real and kept; the kink is visible in the output.
  params = _net([[[1e-13, 1.0]], [[1.0], [1.0]]], [[-0.3e-13, 5.0], [0.0]])
  pieces = relucomp.linear_pieces_1d(params, 0.0, 1.0)
  assert pieces.count == 2
  np.testing.assert_allclose(pieces.breakpoints, [0.3], rtol=1e-12)


def test_coincident_breakpoints_give_one():
  # relu(x - 0.5), relu(1 - 2x) and relu(3x - 1.5) all switch at 0.5.
  params = _net([[[1.0, -2.0, 3.0]], [[1.0], [1.0], [1.0]]],
                [[-0.5, 1.0, -1.5], [0.0]])
  regions = relucomp.linear_pieces_1d(params, 0.0, 1.0, merge=False)
  np.testing.assert_array_equal(regions.breakpoints, [0.5])
  # Nearly coincident (one unit of roundoff apart): the leftmost is kept.
  eps = np.spacing(0.5)
  params = _net([[[1.0, 1.0]], [[1.0], [2.0]]], [[-0.5, -(0.5 + eps)], [0.0]])
  regions = relucomp.linear_pieces_1d(params, 0.0, 1.0, merge=False)
  np.testing.assert_array_equal(regions.breakpoints, [0.5])
  assert regions.count == 2
  np.testing.assert_allclose(regions.slopes[:, 0], [0.0, 3.0])


def test_accepts_jax_arrays_jitted_params_and_jax_scalars(x64):
  params, _, _ = _compositional([0.3, 0.6, 0.5], 0.2)
  jitted = jax.jit(lambda p: p)(params)
  a = relucomp.linear_pieces_1d(jitted, jnp.float64(0.0), jnp.asarray(1.0))
  b = relucomp.linear_pieces_1d(params, 0.0, 1.0)
  assert a.count == b.count == 4
  np.testing.assert_array_equal(a.breakpoints, b.breakpoints)


# ---------------------------------------------------------------- bad input

def test_bad_input():
  good = _net([[[1.0, -1.0]], [[1.0], [1.0]]], [[0.0, 0.0], [0.0]])
  with pytest.raises(ValueError, match="lo must be smaller than hi"):
    relucomp.linear_pieces_1d(good, 1.0, 1.0)
  with pytest.raises(ValueError, match="lo must be smaller than hi"):
    relucomp.linear_pieces_1d(good, 2.0, 1.0)
  with pytest.raises(ValueError, match="hi must be finite"):
    relucomp.linear_pieces_1d(good, 0.0, np.inf)
  with pytest.raises(ValueError, match="lo must be finite"):
    relucomp.linear_pieces_1d(good, np.nan, 1.0)
  with pytest.raises(ValueError, match="lo must be a scalar"):
    relucomp.linear_pieces_1d(good, [0.0, 1.0], 1.0)
  bad = copy.deepcopy(good)
  bad[1]["kernel"][0, 0] = np.nan
  with pytest.raises(ValueError, match=r"params\[1\]\['kernel'\] must be finite"):
    relucomp.linear_pieces_1d(bad, 0.0, 1.0)
  bad = copy.deepcopy(good)
  bad[0]["bias"][1] = np.inf
  with pytest.raises(ValueError, match=r"params\[0\]\['bias'\] must be finite"):
    relucomp.linear_pieces_1d(bad, 0.0, 1.0)
  with pytest.raises(ValueError, match="consecutive layers must chain"):
    relucomp.linear_pieces_1d(_net([[[1.0, 1.0]], [[1.0]]], [[0.0, 0.0], [0.0]]), 0.0, 1.0)
  with pytest.raises(ValueError, match="params"):
    relucomp.linear_pieces_1d([], 0.0, 1.0)
  two_inputs = _net([[[1.0], [1.0]], [[1.0]]], [[0.0], [0.0]])
  with pytest.raises(ValueError, match="params must describe a network with one input"):
    relucomp.linear_pieces_1d(two_inputs, 0.0, 1.0)


# ------------------------------------------------------------- regions_2d

def _area(poly):
  x, y = poly[:, 0], poly[:, 1]
  return 0.5 * np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y)


def _locate(regions, points):
  """Index of the region holding each point (by half-planes of its edges)."""
  owner = np.full(points.shape[0], -1)
  for r, poly in enumerate(regions.vertices):
    edge = np.roll(poly, -1, axis=0) - poly
    rel = points[:, None, :] - poly[None, :, :]
    cross = edge[None, :, 0] * rel[..., 1] - edge[None, :, 1] * rel[..., 0]
    inside = np.all(cross > 1e-12, axis=1)
    assert not np.any(inside & (owner >= 0)), "regions overlap"
    owner[inside] = r
  return owner


def test_regions_2d_hand_built_grid():
  # relu(x - a) for a in (-0.5, 0, 0.5) and relu(y - b) for b in (-0.25, 0.25):
  # a 4 x 3 grid of rectangles on [-1, 1]^2.
  kernel = np.array([[1.0, 1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0, 1.0]])
  bias = np.array([0.5, 0.0, -0.5, 0.25, -0.25])
  params = _net([kernel, np.arange(1.0, 6.0)[:, None]], [bias, [0.0]])
  parts = relucomp.regions_2d(params, [-1.0, -1.0], [1.0, 1.0])
  assert parts.count == 12
  boxes = sorted((tuple(np.round(p.min(axis=0), 12)), tuple(np.round(p.max(axis=0), 12)))
                 for p in parts.vertices)
  xs, ys = [-1.0, -0.5, 0.0, 0.5, 1.0], [-1.0, -0.25, 0.25, 1.0]
  expected = sorted(((x0, y0), (x1, y1)) for x0, x1 in zip(xs[:-1], xs[1:])
                    for y0, y1 in zip(ys[:-1], ys[1:]))
  assert boxes == expected
  assert all(len(p) == 4 and _area(p) > 0 for p in parts.vertices)
  # Affine maps: slope in x is the number of active x-neurons weighted.
  for poly, a, c in zip(parts.vertices, parts.A, parts.c):
    centre = poly.mean(axis=0)
    np.testing.assert_allclose(a[0] @ centre + c[0], _forward2(params, centre[None])[0, 0],
                               atol=1e-12)


def _forward2(params, y):
  with enable_x64():
    p64 = [{k: jnp.asarray(v, jnp.float64) for k, v in layer.items()} for layer in params]
    return np.asarray(relucomp.mlp_apply(p64, jnp.asarray(y, jnp.float64)))


def test_regions_2d_diamond_two_layers():
  # |x| + |y| - 1 through a second layer: 4 quadrants, each cut by the
  # diamond's side, on [-2, 2]^2: 8 regions.
  params = _net([[[1.0, -1.0, 0.0, 0.0], [0.0, 0.0, 1.0, -1.0]], np.ones((4, 1)), [[1.0]]],
                [[0.0, 0.0, 0.0, 0.0], [-1.0], [0.0]])
  parts = relucomp.regions_2d(params, [-2.0, -2.0], [2.0, 2.0])
  assert parts.count == 8
  inner = [p for p, pat in zip(parts.vertices, parts.patterns[1]) if not pat[0]]
  assert len(inner) == 4
  np.testing.assert_allclose(sum(_area(p) for p in inner), 2.0, rtol=1e-12)
  np.testing.assert_allclose(sum(_area(p) for p in parts.vertices), 16.0, rtol=1e-12)


def test_regions_2d_lines_through_a_corner_and_along_an_edge():
  # x = y passes through two corners, x = -1 runs along an edge, and three
  # lines meet at the origin: no slivers, 6 regions.
  kernel = np.array([[1.0, 1.0, 0.0, 1.0], [-1.0, 0.0, 1.0, 0.0]])
  params = _net([kernel, np.ones((4, 1))], [[0.0, 0.0, 0.0, 1.0], [0.0]])
  parts = relucomp.regions_2d(params, [-1.0, -1.0], [1.0, 1.0])
  assert parts.count == 6
  assert min(_area(p) for p in parts.vertices) > 0.1


@settings(max_examples=8)
@given(seed=st.integers(0, 2 ** 31 - 1),
       hidden=st.lists(st.integers(1, 10), min_size=1, max_size=3))
def test_regions_2d_random_networks_against_sampling(seed, hidden):
  rng = np.random.default_rng(seed)
  params = _random_net(rng, [2, *hidden, 2])
  lo, hi = np.array([-1.5, -1.0]), np.array([1.0, 2.0])
  parts = relucomp.regions_2d(params, lo, hi)
  assert len(parts.vertices) == parts.count == parts.A.shape[0] == parts.c.shape[0]
  assert parts.A.shape[1:] == (2, 2)
  assert [p.shape for p in parts.patterns] == [(parts.count, h) for h in hidden]
  areas = np.array([_area(p) for p in parts.vertices])
  assert np.all(areas > 0)                              # convex, counter-clockwise
  np.testing.assert_allclose(areas.sum(), np.prod(hi - lo), rtol=1e-10)
  full = np.concatenate(parts.patterns, axis=1)
  assert len(np.unique(full, axis=0)) == parts.count    # each region its own pattern
  # Every region, however small, has the pattern a forward pass finds at
  # its vertex average (strictly inside a convex polygon).
  centres = np.array([p.mean(axis=0) for p in parts.vertices])
  np.testing.assert_array_equal(full, numpy_patterns(params, centres))
  g = np.stack(np.meshgrid(np.linspace(lo[0] + 1e-3, hi[0] - 1e-3, 157),
                           np.linspace(lo[1] + 1e-3, hi[1] - 1e-3, 163)), axis=-1).reshape(-1, 2)
  g = g + rng.uniform(-1e-4, 1e-4, g.shape)             # off any hand-picked line
  owner = _locate(parts, g)
  found = owner >= 0
  assert found.mean() > 0.99
  np.testing.assert_array_equal(full[owner[found]], numpy_patterns(params, g[found]))
  values = _forward2(params, g[found])
  mapped = np.einsum("noi,ni->no", parts.A[owner[found]], g[found]) + parts.c[owner[found]]
  np.testing.assert_allclose(mapped, values, rtol=1e-9, atol=1e-9)
  # Every pattern seen on the grid is a region; regions of fair size are seen.
  seen = np.unique(owner[found])
  cell = np.prod((hi - lo) / 150)
  assert np.all(np.isin(np.flatnonzero(areas > 50 * cell), seen))


def test_regions_2d_bad_input():
  params = _net([[[1.0], [1.0]], [[1.0]]], [[0.0], [0.0]])
  with pytest.raises(ValueError, match="lo must be smaller than hi"):
    relucomp.regions_2d(params, [0.0, 1.0], [1.0, 1.0])
  with pytest.raises(ValueError, match="lo must have two entries"):
    relucomp.regions_2d(params, 0.0, [1.0, 1.0])
  with pytest.raises(ValueError, match="hi must be finite"):
    relucomp.regions_2d(params, [0.0, 0.0], [1.0, np.nan])
  one_input = _net([[[1.0]], [[1.0]]], [[0.0], [0.0]])
  with pytest.raises(ValueError, match="params must describe a network with two inputs"):
    relucomp.regions_2d(one_input, [0.0, 0.0], [1.0, 1.0])
  bad = _net([[[1.0], [np.nan]], [[1.0]]], [[0.0], [0.0]])
  with pytest.raises(ValueError, match=r"params\[0\]\['kernel'\] must be finite"):
    relucomp.regions_2d(bad, [0.0, 0.0], [1.0, 1.0])


def test_regions_2d_compositional_strips():
  # The compositional network reading only the first input: 2^d strips, the
  # zero touches at the valleys (and of t_1 along x = 0) never cut.
  params, peaks, _ = _compositional([0.3, 0.6, 0.45, 0.55, 0.4, 0.5, 0.35], 0.3)
  layers = [{k: np.asarray(v, np.float64) for k, v in layer.items()} for layer in params]
  layers[0]["kernel"] = np.concatenate([layers[0]["kernel"], np.zeros((1, 4))])
  parts = relucomp.regions_2d(layers, [0.0, 0.0], [1.0, 1.0])
  assert parts.count == 2 ** 6
  lefts = np.sort([p[:, 0].min() for p in parts.vertices])
  np.testing.assert_allclose(lefts[1:], _wave_breakpoints(np.asarray(peaks), 6), atol=1e-12)
  assert all(len(p) == 4 for p in parts.vertices)


def test_networks_without_hidden_layers_are_one_piece():
  line = _net([[[2.0, -1.0]]], [[1.0, 0.5]])
  pieces = relucomp.linear_pieces_1d(line, -1.0, 1.0)
  assert pieces.count == 1 and pieces.breakpoints.size == 0
  np.testing.assert_array_equal(pieces.slopes, [[2.0, -1.0]])
  np.testing.assert_array_equal(pieces.intercepts, [[1.0, 0.5]])
  plane = _net([[[2.0], [3.0]]], [[1.0]])
  parts = relucomp.regions_2d(plane, [0.0, 0.0], [1.0, 1.0])
  assert parts.count == 1 and parts.patterns == []
  np.testing.assert_array_equal(parts.A, [[[2.0, 3.0]]])
  np.testing.assert_array_equal(parts.c, [[1.0]])


def test_regions_2d_accepts_jax_params_of_either_dtype(dtype):
  kernel = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
  bias = np.array([0.5, -0.5, 0.0])
  params = [{"kernel": jnp.asarray(kernel, dtype), "bias": jnp.asarray(bias, dtype)},
            {"kernel": jnp.ones((3, 1), dtype), "bias": jnp.zeros(1, dtype)}]
  parts = relucomp.regions_2d(params, jnp.asarray([-1.0, -1.0], dtype), (1.0, 1.0))
  assert parts.count == 6                    # x = -0.5, x = 0.5 and y = 0
  assert parts.A.dtype == np.float64
  assert params[0]["kernel"].dtype == dtype  # the input is left as it was


def test_value_rtol_is_checked():
  params = [{"kernel": np.ones((1, 2)), "bias": np.zeros(2)},
            {"kernel": np.ones((2, 1)), "bias": np.zeros(1)}]
  with pytest.raises(ValueError, match="value_rtol"):
    relucomp.linear_pieces_1d(params, 0.0, 1.0, value_rtol=2.0)


def _grid_network(peaks_x, peaks_y, amplitude):
  """Two compositional networks side by side, one per input, outputs summed.

  Its regions on [0, 1]^2 are the rectangles between the breakpoints of the
  two triangle waves: 2^d x 2^d of them.
  """
  towers = [_compositional(peaks, amplitude)[0] for peaks in (peaks_x, peaks_y)]
  layers = []
  for i, (a, b) in enumerate(zip(*towers)):
    ka, kb = np.asarray(a["kernel"], np.float64), np.asarray(b["kernel"], np.float64)
    if i == len(towers[0]) - 1:
      kernel = np.concatenate([ka, kb])
      bias = np.asarray(a["bias"], np.float64) + np.asarray(b["bias"], np.float64)
    else:
      kernel = np.zeros((ka.shape[0] + kb.shape[0], ka.shape[1] + kb.shape[1]))
      kernel[:ka.shape[0], :ka.shape[1]] = ka
      kernel[ka.shape[0]:, ka.shape[1]:] = kb
      bias = np.concatenate([np.asarray(a["bias"], np.float64), np.asarray(b["bias"], np.float64)])
    layers.append({"kernel": kernel, "bias": bias})
  return layers


def test_regions_2d_grid_network_in_either_dtype(dtype):
  # The dtype-aware zero tolerance: the float32 copy of the weights breaks
  # the exact cancellations at the valleys by ~1e-7, which float64's 1e-10
  # would count as slivers; 100 float32 ulp treats them as touches.
  d = 3
  rng = np.random.default_rng(11)
  peaks_x, peaks_y = rng.uniform(0.25, 0.75, d + 1), rng.uniform(0.25, 0.75, d + 1)
  layers = _grid_network(peaks_x, peaks_y, 0.3)
  params = [{k: jnp.asarray(v, dtype) for k, v in layer.items()} for layer in layers]
  parts = relucomp.regions_2d(params, [0.0, 0.0], [1.0, 1.0])
  assert parts.count == 4 ** d
  # Independent: the rectangles between the waves' breakpoints.
  xs = np.concatenate([[0.0], _wave_breakpoints(peaks_x, d), [1.0]])
  ys = np.concatenate([[0.0], _wave_breakpoints(peaks_y, d), [1.0]])
  lows = np.array([p.min(axis=0) for p in parts.vertices])
  highs = np.array([p.max(axis=0) for p in parts.vertices])
  expected = np.stack(np.meshgrid(xs[:-1], ys[:-1], indexing="ij"), -1).reshape(-1, 2)
  gap = np.abs(lows[:, None, :] - expected[None, :, :]).max(axis=-1)
  match = gap.argmin(axis=1)
  assert len(set(match.tolist())) == 4 ** d                 # one region per rectangle
  atol = 1e-12 if dtype == np.float64 else 1e-6
  assert gap.min(axis=1).max() < atol
  right = np.stack(np.meshgrid(xs[1:], ys[1:], indexing="ij"), -1).reshape(-1, 2)
  np.testing.assert_allclose(highs, right[match], atol=atol)
  assert all(len(p) == 4 for p in parts.vertices)
  np.testing.assert_allclose(sum(_area(p) for p in parts.vertices), 1.0, rtol=1e-12)
  if dtype == np.float32:
    # float64's tolerance on the rounded weights finds the slivers.
    assert relucomp.regions_2d(params, [0.0, 0.0], [1.0, 1.0], value_rtol=1e-10).count > 4 ** d


def test_regions_2d_float32_compositional_strips_count_as_float64():
  params, _, _ = _compositional([0.3, 0.6, 0.45, 0.55, 0.4, 0.5, 0.35], 0.3)
  layers = [{k: np.asarray(v, np.float64) for k, v in layer.items()} for layer in params]
  layers[0]["kernel"] = np.concatenate([layers[0]["kernel"], np.zeros((1, 4))])
  as_f32 = [{k: v.astype(np.float32) for k, v in layer.items()} for layer in layers]
  f64 = relucomp.regions_2d(layers, [0.0, 0.0], [1.0, 1.0])
  f32 = relucomp.regions_2d(as_f32, [0.0, 0.0], [1.0, 1.0])
  assert f64.count == f32.count == 2 ** 6
  by_position = lambda parts: np.concatenate(parts.patterns, axis=1)[
      np.argsort([p[:, 0].min() for p in parts.vertices])]
  np.testing.assert_array_equal(by_position(f64), by_position(f32))


def test_regions_2d_value_rtol_is_checked():
  params = _net([[[1.0], [1.0]], [[1.0]]], [[0.0], [0.0]])
  for bad in (-1e-3, 1.0, np.nan):
    with pytest.raises(ValueError, match="value_rtol must be in"):
      relucomp.regions_2d(params, [0.0, 0.0], [1.0, 1.0], value_rtol=bad)
  # Zero and explicit values are accepted.
  assert relucomp.regions_2d(params, [-1.0, -1.0], [1.0, 1.0], value_rtol=0.0).count == 2


def _rotated(poly):
  """A polygon's vertices from its lowest-leftmost one on, in their order."""
  return np.roll(poly, -int(np.lexsort((poly[:, 1], poly[:, 0]))[0]), axis=0)


def _layer_values(params, y):
  """Every hidden layer's pre-activations at ``y`` (float64 NumPy) and the
  sums of the absolute values of their terms."""
  pre = numpy_preactivations(params, y)
  inputs = [np.asarray(y, np.float64)] + [np.maximum(z, 0.0) for z in pre[:-2]]
  return [(z, np.abs(h) @ np.abs(np.asarray(layer["kernel"], np.float64))
           + np.abs(np.asarray(layer["bias"], np.float64)))
          for z, h, layer in zip(pre[:-1], inputs, params[:-1])]


@settings(max_examples=12)
@given(seed=st.integers(0, 2 ** 31 - 1), integer=st.booleans(), single=st.booleans(),
       hidden=st.lists(st.integers(2, 12), min_size=1, max_size=3))
def test_regions_2d_matches_numpy_line_by_line_reference(seed, integer, single, hidden):
  # The compiled enumeration against the NumPy one in tests/: the same
  # rules, other code (breadth first over all polygons, one matrix product
  # per layer for the maps). Small integer weights make lines through
  # lattice points, corners and common points: those are checked against
  # the exact rational enumeration.
  rng = np.random.default_rng(seed)
  if integer and not single:
    hidden = [min(width, 6) for width in hidden]   # the rational reference is slow
  widths = [2, *hidden, int(rng.integers(1, 3))]
  if integer:
    params = _net([rng.integers(-2, 3, (a, b)).astype(float) for a, b in zip(widths, widths[1:])],
                  [rng.integers(-1, 2, b).astype(float) for b in widths[1:]])
  else:
    params = _random_net(rng, widths)
  if single:
    params = [{k: np.asarray(v, np.float32) for k, v in layer.items()} for layer in params]
  rtol = _regions.value_rtol_for(params)   # the default regions_2d uses
  lo, hi = np.array([-2.0, -1.5]), np.array([1.5, 2.0])
  parts = relucomp.regions_2d(params, lo, hi)
  full = np.concatenate(parts.patterns, axis=1)
  assert parts.count == len(parts.vertices) == parts.A.shape[0] == parts.c.shape[0]
  assert full.shape == (parts.count, sum(hidden))
  assert len(np.unique(full, axis=0)) == parts.count
  if integer and not single:
    # Lines through lattice points and common points: the NumPy reference
    # interpolates its cut points and its snapping then depends on rounding,
    # so the regions are checked against the exact rational enumeration.
    exact = np.array(exact_regions_2d(params, lo, hi), bool).reshape(-1, sum(hidden))
    assert exact.shape[0] == parts.count
    np.testing.assert_array_equal(full[np.lexsort(full.T[::-1])],
                                  exact[np.lexsort(exact.T[::-1])])
  else:
    vertices, patterns, a_ref, c_ref = regions_2d_reference(params, lo, hi, rtol)
    assert parts.count == len(vertices)
    ours, ref = np.lexsort(full.T[::-1]), np.lexsort(patterns.T[::-1])
    np.testing.assert_array_equal(full[ours], patterns[ref])
    np.testing.assert_allclose(parts.A[ours], a_ref[ref], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(parts.c[ours], c_ref[ref], rtol=1e-12, atol=1e-12)
    for r, q in zip(ours, ref):
      assert parts.vertices[r].shape == vertices[q].shape
      np.testing.assert_allclose(_rotated(parts.vertices[r]), _rotated(vertices[q]), rtol=0,
                                 atol=1e-12)
  areas = np.array([_area(p) for p in parts.vertices])
  assert np.all(areas >= 0)
  np.testing.assert_allclose(areas.sum(), np.prod(hi - lo), rtol=1e-12)
  # At random points inside every region (halfway or more towards its
  # vertex average) the network is the region's affine map, and its pattern
  # is the region's wherever a pre-activation is clearly away from zero.
  weights = [rng.dirichlet(np.ones(len(p)), 3) for p in parts.vertices]
  points = np.concatenate([(0.5 / len(p) + 0.5 * w) @ p for p, w in zip(parts.vertices, weights)])
  owner = np.repeat(np.arange(parts.count), 3)
  mapped = np.einsum("noi,ni->no", parts.A[owner], points) + parts.c[owner]
  p64 = [{k: np.asarray(v, np.float64) for k, v in layer.items()} for layer in params]
  np.testing.assert_allclose(mapped, _forward2(p64, points), rtol=1e-9, atol=1e-9)
  values = _layer_values(p64, points)
  seen = np.concatenate([z > 0 for z, _ in values], axis=1)
  clear = np.concatenate([np.abs(z) > 1e-6 * scale for z, scale in values], axis=1)
  np.testing.assert_array_equal(seen[clear], full[owner][clear])


def test_regions_2d_buffers_grow_without_changing_the_result():
  # The compiled enumeration grows its buffers and resumes where it stopped;
  # starting every buffer with room for one entry makes each of them grow.
  # A polygon of 40 sides (lines tangent to a circle) and a wide layer.
  rng = np.random.default_rng(3)
  angles = np.linspace(0.0, 2 * np.pi, 40, endpoint=False)
  layers = [(np.stack([np.cos(angles), np.sin(angles)]), np.full(40, -0.7)),
            (rng.normal(size=(40, 24)), rng.normal(size=24)),
            (rng.normal(size=(24, 2)), np.zeros(2))]
  flat = np.concatenate([a.ravel() for layer in layers for a in layer])
  dims = np.array([2, 40, 24, 2])
  corners = np.array([-1.0, -1.0, 1.0, 1.0])
  roomy = _kernel.enumerate_cells(corners, flat, dims, 1e-10)
  tight = _kernel.enumerate_cells(corners, flat, dims, 1e-10, True)
  for a, b in zip(roomy, tight):
    np.testing.assert_array_equal(a, b)
  xy, sizes, maps = roomy[:3]
  assert maps.shape[0] == sizes.sum() > 100
  assert xy.shape[0] == sum(k * n for k, n in enumerate(sizes.tolist()))
  at, area = 0, 0.0
  for k, n in enumerate(sizes.tolist()):
    for _ in range(n):
      area += _area(xy[at:at + k])
      at += k
  np.testing.assert_allclose(area, 4.0, rtol=1e-12)
