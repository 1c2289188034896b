"""local_complexity: exact region counts near inputs, on random planes and segments."""

from __future__ import annotations

import hypothesis.strategies as st
import jax
import numpy as np
import pytest
from hypothesis import given, settings

import relucomp
from relucomp import _complexity
from _reference import numpy_patterns
from _regions2d_reference import regions_2d as regions_2d_reference


def _grid_net(xs, ys):
  """relu(y_0 - a) for a in xs and relu(y_1 - b) for b in ys, summed with
  distinct weights: its regions are the cells of the grid of those lines."""
  n = len(xs) + len(ys)
  kernel = np.zeros((2, n))
  kernel[0, :len(xs)] = 1.0
  kernel[1, len(xs):] = 1.0
  bias = -np.concatenate([xs, ys])
  return [{"kernel": kernel, "bias": bias},
          {"kernel": (1.0 + np.arange(n))[:, None], "bias": np.zeros(1)}]


def _cells_meeting_disc(xs, ys, centre, radius):
  """Grid cells within ``radius`` of ``centre``: the closest point of an
  axis-aligned cell is the centre clipped to it (independent of polygons)."""
  ex = np.concatenate([[-np.inf], np.sort(xs), [np.inf]])
  ey = np.concatenate([[-np.inf], np.sort(ys), [np.inf]])
  count = 0
  for i in range(len(ex) - 1):
    for j in range(len(ey) - 1):
      near = np.array([np.clip(centre[0], ex[i], ex[i + 1]), np.clip(centre[1], ey[j], ey[j + 1])])
      count += np.linalg.norm(near - centre) < radius
  return count


@settings(max_examples=20)
@given(seed=st.integers(0, 2 ** 31 - 1), radius=st.floats(0.05, 2.0))
def test_grid_counts_are_exact(seed, radius):
  # With two inputs every plane through x is the input plane itself, and a
  # disc is a disc whatever the directions: the count is the number of grid
  # cells the disc meets, known in closed form.
  rng = np.random.default_rng(seed)
  xs, ys = rng.uniform(-2, 2, rng.integers(1, 6)), rng.uniform(-2, 2, rng.integers(1, 6))
  params = _grid_net(xs, ys)
  x = rng.uniform(-2, 2, (3, 2))
  counts = relucomp.local_complexity(params, x, radius=radius, key=jax.random.key(seed),
                                     planes=2)
  for i in range(3):
    assert counts[i].tolist() == [_cells_meeting_disc(xs, ys, x[i], radius)] * 2
  # Along a segment x + t u, |t| < radius, the regions are 1 plus the lines crossed.
  seg = relucomp.local_complexity(params, x, radius=radius, key=jax.random.key(seed),
                                  planes=2, kind="segment")
  u = _complexity._directions(jax.random.key(seed), 3, 2, 1, 2)[:, :, 0]
  for i in range(3):
    for p in range(2):
      t = np.concatenate([(xs - x[i, 0]) / u[i, p, 0], (ys - x[i, 1]) / u[i, p, 1]])
      assert seg[i, p] == 1 + np.sum(np.abs(t) < radius)


def test_directions_are_orthonormal_and_follow_the_key():
  d = _complexity._directions(jax.random.key(0), 4, 3, 2, 10)
  assert d.shape == (4, 3, 2, 10)
  np.testing.assert_allclose(np.einsum("mpki,mpli->mpkl", d, d),
                             np.broadcast_to(np.eye(2), (4, 3, 2, 2)), atol=1e-14)
  np.testing.assert_array_equal(d, _complexity._directions(jax.random.key(0), 4, 3, 2, 10))
  assert not np.allclose(d, _complexity._directions(jax.random.key(1), 4, 3, 2, 10))


def test_random_network_counts_between_sampling_and_the_square(rng):
  # Many inputs: for each (point, plane), the exact count lies between the
  # distinct patterns a dense sample of the disc sees and the number of
  # regions of the whole square (the NumPy reference enumeration).
  n_in = 12
  params = [{"kernel": rng.normal(size=(n_in, 10)) / np.sqrt(n_in), "bias": rng.normal(size=10)},
            {"kernel": rng.normal(size=(10, 8)) / np.sqrt(10), "bias": rng.normal(size=8)},
            {"kernel": rng.normal(size=(8, 1)), "bias": np.zeros(1)}]
  x = rng.normal(size=(3, n_in))
  key = jax.random.key(7)
  radius = 1.5
  counts = relucomp.local_complexity(params, x, radius=radius, key=key, planes=2)
  dirs = _complexity._directions(key, 3, 2, 2, n_in)
  r = np.sqrt(rng.uniform(0, 1, 20000)) * radius
  theta = rng.uniform(0, 2 * np.pi, 20000)
  disc = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)
  for i in range(3):
    for p in range(2):
      sample = numpy_patterns(params, x[i] + disc @ dirs[i, p])
      seen = len(np.unique(sample, axis=0))
      composed = ([{"kernel": dirs[i, p] @ params[0]["kernel"],
                    "bias": x[i] @ params[0]["kernel"] + params[0]["bias"]}] + params[1:])
      square = len(regions_2d_reference(composed, (-radius, -radius), (radius, radius), 1e-10)[0])
      assert seen <= counts[i, p] <= square
  # A larger disc on the same planes meets at least as many regions.
  assert np.all(relucomp.local_complexity(params, x, radius=3.0, key=key, planes=2) >= counts)


def test_stacked_snapshots(rng):
  # (An nnx model's params: from_flax, as in the how-to's example.)
  nets = [[{"kernel": rng.normal(size=(5, 6)), "bias": rng.normal(size=6)},
           {"kernel": rng.normal(size=(6, 2)), "bias": rng.normal(size=2)}] for _ in range(3)]
  stacked = [{k: np.stack([net[l][k] for net in nets]) for k in ("kernel", "bias")}
             for l in range(2)]
  x = rng.normal(size=(4, 5))
  key = jax.random.key(3)
  together = relucomp.local_complexity(stacked, x, radius=1.0, key=key, planes=3)
  assert together.shape == (3, 4, 3) and together.dtype == np.int64
  for s, net in enumerate(nets):
    np.testing.assert_array_equal(together[s], relucomp.local_complexity(
        net, x, radius=1.0, key=key, planes=3))


def test_bad_input(rng):
  params = [{"kernel": rng.normal(size=(3, 4)), "bias": rng.normal(size=4)},
            {"kernel": rng.normal(size=(4, 1)), "bias": np.zeros(1)}]
  x = rng.normal(size=(2, 3))
  key = jax.random.key(0)
  call = lambda **kw: relucomp.local_complexity(**{"params": params, "x": x, "radius": 1.0,
                                                   "key": key, **kw})
  with pytest.raises(ValueError, match=r"x must have shape \(m, n_in\) with n_in = 3"):
    call(x=x[0])
  with pytest.raises(ValueError, match=r"x must have shape \(2, n_in\)"):
    call(x=x[:, :2])
  with pytest.raises(ValueError, match="x must be finite"):
    call(x=np.full((2, 3), np.nan))
  for radius in (0.0, -1.0, np.inf, "a"):
    with pytest.raises(ValueError, match="radius must be a positive finite scalar"):
      call(radius=radius)
  for planes in (0, True, 1.5):
    with pytest.raises(ValueError, match="planes must be an integer >= 1"):
      call(planes=planes)
  with pytest.raises(ValueError, match="kind must be one of"):
    call(kind="disc")
  one = [{"kernel": np.ones((1, 2)), "bias": np.zeros(2)},
         {"kernel": np.ones((2, 1)), "bias": np.zeros(1)}]
  with pytest.raises(ValueError, match="kind='plane' needs a network with at least two inputs"):
    call(params=one, x=np.zeros((2, 1)))
  assert call(params=one, x=np.zeros((2, 1)), kind="segment").shape == (2, 4)
  bad = [dict(layer) for layer in params]
  bad[1] = {"kernel": np.full((4, 1), np.nan), "bias": np.zeros(1)}
  with pytest.raises(ValueError, match=r"params\[1\]\['kernel'\] must be finite"):
    call(params=bad)
  mixed = [{"kernel": np.stack([params[0]["kernel"]] * 2), "bias": np.stack([params[0]["bias"]] * 2)},
           params[1]]
  with pytest.raises(ValueError, match=r"params\[1\] must have the leading \(snapshot\) axes"):
    call(params=mixed)
  with pytest.raises(ValueError, match="params must be a non-empty list"):
    call(params={"kernel": 1})
