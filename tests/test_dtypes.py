"""Region counts of 16-, 32- and 64-bit networks, degenerate vertices, wide domains
and the size guard, against exact rational counts (tests/_reference.py)."""

from __future__ import annotations

import hypothesis.strategies as st
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings

import relucomp
from _reference import exact_pieces_1d, exact_regions_2d

DTYPES = [jnp.bfloat16, np.float16, np.float32, np.float64]


def _random_net(rng, widths, dtype, *, integer=False):
  layers = []
  for n_in, n_out in zip(widths[:-1], widths[1:]):
    if integer:
      kernel, bias = rng.integers(-2, 3, (n_in, n_out)), rng.integers(-1, 2, n_out)
    else:
      kernel, bias = rng.normal(size=(n_in, n_out)) / np.sqrt(n_in), rng.normal(size=n_out)
    layers.append({"kernel": np.asarray(kernel, np.float64).astype(dtype),
                   "bias": np.asarray(bias, np.float64).astype(dtype)})
  return layers


def _patterns(parts):
  full = np.concatenate(parts.patterns, axis=1)
  return full[np.lexsort(full.T[::-1])]


def _sorted(patterns, width):
  full = np.array(patterns, bool).reshape(-1, width)
  return full[np.lexsort(full.T[::-1])]


@settings(max_examples=15)
@given(seed=st.integers(0, 2 ** 31 - 1), dtype=st.sampled_from(DTYPES),
       hidden=st.lists(st.integers(1, 6), min_size=1, max_size=3),
       integer=st.booleans(), width=st.sampled_from([1.0, 10.0, 1e8]))
def test_1d_counts_are_the_exact_counts_of_the_stored_weights(seed, dtype, hidden, integer,
                                                              width):
  # The stored weights (16 bits included) are exact rationals; the rational
  # count of regions and of pieces is the answer, at every domain width.
  rng = np.random.default_rng(seed)
  params = _random_net(rng, [1, *hidden, int(rng.integers(1, 3))], dtype, integer=integer)
  lo, hi = -width, 1.5 * width
  regions, pieces = exact_pieces_1d(params, lo, hi)
  assert relucomp.linear_pieces_1d(params, lo, hi, merge=False).count == regions
  assert relucomp.linear_pieces_1d(params, lo, hi).count == pieces


@settings(max_examples=8)
@given(seed=st.integers(0, 2 ** 31 - 1), dtype=st.sampled_from(DTYPES),
       hidden=st.lists(st.integers(2, 5), min_size=1, max_size=2), integer=st.booleans())
def test_2d_regions_are_the_exact_regions_of_the_stored_weights(seed, dtype, hidden, integer):
  rng = np.random.default_rng(seed)
  params = _random_net(rng, [2, *hidden, 1], dtype, integer=integer)
  lo, hi = (-2.0, -1.5), (1.5, 2.0)
  exact = exact_regions_2d(params, lo, hi)
  parts = relucomp.regions_2d(params, lo, hi)
  assert parts.count == len(exact)
  np.testing.assert_array_equal(_patterns(parts), _sorted(exact, sum(hidden)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_16_bit_compositional_network_has_2_to_the_d_pieces(dtype):
  # Peaks 1/2 and scales 4^-k: every weight is a power of two, exact in 16 bits.
  peaks = jnp.full(5, 0.5)
  params = relucomp.compositional_mlp(peaks[:4], relucomp.enforced_scales(peaks, 0.25))
  params = [{k: np.asarray(v, np.float64).astype(dtype) for k, v in layer.items()}
            for layer in params]
  assert exact_pieces_1d(params, 0.0, 1.0)[1] == 16
  assert relucomp.linear_pieces_1d(params, 0.0, 1.0).count == 16


def test_random_16_bit_2d_network_of_the_issue():
  rng = np.random.default_rng(0)
  for dtype in (jnp.bfloat16, np.float16):
    params = _random_net(rng, [2, 6, 6, 1], dtype)
    assert relucomp.regions_2d(params, (-2, -2), (2, 2)).count == len(
        exact_regions_2d(params, (-2, -2), (2, 2)))


def _area(poly):
  x, y = poly[:, 0], poly[:, 1]
  return 0.5 * np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y)


def test_no_zero_area_region_where_three_lines_meet():
  # Lines 1 and 3 meet at (0, 0.5); the second layer's line y_0 = 0 passes
  # through that point with coefficients that cancel (-2 - 4 + 2 + 4 = 0).
  params = [{"kernel": np.array([[1.0, 2, 1, 1], [2, -2, 1, 2]]),
             "bias": np.array([1.0, 1, 1, -1])},
            {"kernel": np.array([[-1.0], [2], [2], [2]]), "bias": np.array([-1.0])},
            {"kernel": np.eye(1), "bias": np.zeros(1)}]
  parts = relucomp.regions_2d(params, (-2, -2), (2, 2))
  assert parts.count == len(exact_regions_2d(params, (-2, -2), (2, 2))) == 13
  areas = np.array([_area(p) for p in parts.vertices])
  # The smallest exact region has area 0.0193 (rounding moves areas by ~1e-15).
  assert areas.min() > 0.019
  np.testing.assert_allclose(areas.sum(), 16.0, rtol=1e-12)


@pytest.mark.parametrize("half_width", [1.0, 1e13, 1e14, 1e16, 1e100, 1e300])
def test_1d_wide_domains_keep_the_breakpoints_near_the_origin(half_width):
  peaks = jnp.full(5, 0.5)
  params = relucomp.compositional_mlp(peaks[:4], relucomp.enforced_scales(peaks, 0.25))
  pieces = relucomp.linear_pieces_1d(params, -half_width, half_width)
  assert pieces.count == exact_pieces_1d(params, -half_width, half_width)[1]
  assert pieces.count == (17 if half_width == 1.0 else 19)
  inner = pieces.breakpoints[(pieces.breakpoints > 0) & (pieces.breakpoints < 1)]
  # The 15 breakpoints of W_4 in (0, 1) are k/16, exact in float32 weights.
  np.testing.assert_allclose(inner, np.arange(1, 16) / 16, rtol=0, atol=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_2d_wide_domains_match_the_exact_count(seed):
  rng = np.random.default_rng(seed)
  params = _random_net(rng, [2, 4, 4, 1], np.float64)
  counts = []
  for half_width in (1e4, 1e15, 1e50, 1e300):
    box = ((-half_width, -half_width), (half_width, half_width))
    count = relucomp.regions_2d(params, *box).count
    assert count == len(exact_regions_2d(params, *box))
    counts.append(count)
  assert len(set(counts[1:])) == 1        # all vertices lie within 1e15


def test_size_guard_1d():
  peaks = jnp.full(13, 0.5)
  params = relucomp.compositional_mlp(peaks[:12], relucomp.enforced_scales(peaks, 0.25))
  with pytest.raises(ValueError, match=r"max_regions = 1000 .*1024 after hidden layer 10 of 12"):
    relucomp.linear_pieces_1d(params, 0.0, 1.0, max_regions=1000)
  assert relucomp.linear_pieces_1d(params, 0.0, 1.0, max_regions=4096).count == 4096
  for bad in (0, -1, 2.5, True, "many"):
    with pytest.raises(ValueError, match="max_regions must be an integer"):
      relucomp.linear_pieces_1d(params, 0.0, 1.0, max_regions=bad)


def test_size_guard_2d():
  params = _random_net(np.random.default_rng(1), [2, 8, 8, 1], np.float64)
  count = relucomp.regions_2d(params, (-3, -3), (3, 3)).count
  with pytest.raises(ValueError, match=r"regions_2d would make more than max_regions = 5 "):
    relucomp.regions_2d(params, (-3, -3), (3, 3), max_regions=5)
  assert relucomp.regions_2d(params, (-3, -3), (3, 3), max_regions=count).count == count
  with pytest.raises(ValueError, match="max_regions must be an integer"):
    relucomp.regions_2d(params, (-3, -3), (3, 3), max_regions=0)
