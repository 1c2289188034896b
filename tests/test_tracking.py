"""Exact piece counts through training (fit(..., track_pieces_every=k))."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import relucomp
from relucomp._engine import INSET


def _fit(x, y, key, **kw):
  settings = dict(depth=3, pretrain_steps=30, finetune_steps=30, track_pieces_every=10)
  settings.update(kw)
  return relucomp.fit(x, y, key=key, **settings)


def _clear_patterns(params, pts):
  """The activation patterns (float64 NumPy forward) at the points no line
  passes within the counting tolerance of.

  regions_2d treats a pre-activation within ``value_rtol`` times the scale
  of its terms as zero (float32 weights: 100 ulps, so float32 slivers merge);
  a point that close to a line has no definite pattern and is left out.
  """
  rtol = 100 * np.finfo(np.float32).eps if params[0]["kernel"].dtype == np.float32 else 1e-10
  h, patterns, clear = np.asarray(pts, np.float64), [], np.ones(len(pts), bool)
  for layer in params[:-1]:
    kernel = np.asarray(layer["kernel"], np.float64)
    bias = np.asarray(layer["bias"], np.float64)
    z = h @ kernel + bias
    scale = np.abs(h) @ np.abs(kernel) + np.abs(bias)
    # A neuron whose terms are all zero is inactive (definite) there.
    clear &= np.all((np.abs(z) > rtol * scale) | (scale == 0), axis=1)
    patterns.append(z > 0)
    h = np.maximum(z, 0.0)
  stacked = np.concatenate(patterns, axis=1)[clear]
  return {tuple(row) for row in stacked}


def test_enforced_keeps_2_to_the_d_pieces_in_stage_1(dtype, key):
  x = jnp.linspace(-2.0, 3.0, 80, dtype=dtype)
  # The paper's scheme (stage 1 trains the law's network itself); the
  # second-order default's stage-1 snapshots are its screened starts.
  res = _fit(x, jnp.exp(x), key, optimizer="adam")
  hist = relucomp.pieces_history(res)
  assert hist.steps.tolist() == [0, 10, 20, 30, 40, 50, 60]
  assert hist.stage2_start == 30
  stage1 = hist.counts[hist.steps <= hist.stage2_start]
  assert stage1.tolist() == [8] * 4
  # Independent check of the last snapshot: its slopes change at every
  # breakpoint found, sampled on a fine grid between them.
  last = [{k: np.asarray(v[-1], np.float64) for k, v in layer.items()} for layer in res.snapshots]
  pieces = relucomp.linear_pieces_1d(last, -2.0, 3.0)
  assert pieces.count == hist.counts[-1]


def test_batched_fits_and_activation_regions(key):
  x = jnp.linspace(0.0, 1.0, 50)
  keys = jax.random.split(key, 2)
  res = jax.vmap(lambda k: _fit(x, x**2, k, method="kaiming"))(keys)
  hist = relucomp.pieces_history(res)
  assert hist.counts.shape == (2, 7) and hist.stage2_start == 0
  regions = relucomp.pieces_history(res, merge=False)
  assert np.all(regions.counts >= hist.counts)
  one = relucomp.pieces_history(_fit(x, x**2, keys[1], method="kaiming"))
  assert one.counts.shape == (7,)


def _at(tree, index):
  return [{k: np.asarray(a[index]) for k, a in layer.items()} for layer in tree]


def test_dc_snapshots_from_both_stages(key):
  """The difference network: snapshot 0 is the start, the last equals params."""
  x = jnp.linspace(-1.0, 1.0, 60)
  res = _fit(x, x**3 - x, key, method="dc", pretrain_steps=20, finetune_steps=30,
             track_pieces_every=10)
  hist = relucomp.pieces_history(res)
  assert hist.steps.tolist() == [0, 10, 20, 30, 40, 50] and hist.stage2_start == 20
  # Two depth-3 networks side by side: at most 2^3 + 2^3 pieces while the
  # peaks define them (stage 1), each count equal to a direct enumeration.
  assert np.all(hist.counts[:3] <= 16) and np.all(hist.counts >= 2)
  for s, count in enumerate(hist.counts.tolist()):
    assert relucomp.linear_pieces_1d(_at(res.snapshots, s), -1.0, 1.0).count == count
  # Snapshot 2 (step 20) is the stage-1 network: the closed form of ``pretrained``.
  m = res.pretrained
  t = INSET + (1 - 2 * INSET) * (x + 1.0) / 2.0
  stage1 = m["bias"] + (relucomp.compositional(t, m["peaks"][0], m["scales"][0],
                                               slope=m["slope"])
                        - relucomp.compositional(t, m["peaks"][1], m["scales"][1],
                                                 slope=0.0))
  lo, hi = res.y_range
  snap2 = relucomp.mlp_apply(_at(res.snapshots, 2), np.asarray(x, np.float64)[:, None])[:, 0]
  np.testing.assert_allclose(snap2, lo + (hi - lo) * np.asarray(stage1), atol=1e-5)
  last = relucomp.mlp_apply(_at(res.snapshots, -1), np.asarray(x, np.float64)[:, None])
  np.testing.assert_allclose(last, relucomp.mlp_apply(res.params, x[:, None]), atol=1e-5)


@pytest.mark.parametrize("method", ["compositional", "kaiming"])
def test_two_input_fits_count_regions(key, method):
  """Two inputs: every snapshot's count is its activation regions on the data box."""
  g = jnp.linspace(-1.0, 2.0, 8)
  x = jnp.stack(jnp.meshgrid(g, 0.5 * g), -1).reshape(-1, 2)
  y = jnp.sin(x[:, 0]) * x[:, 1]
  res = _fit(x, y, key, method=method, depth=2, pretrain_steps=10, finetune_steps=10)
  hist = relucomp.pieces_history(res)
  assert hist.steps.tolist() == [0, 10, 20]
  assert hist.stage2_start == (10 if method == "compositional" else 0)
  lo, hi = np.array([-1.0, -0.5]), np.array([2.0, 1.0])
  for s, count in enumerate(hist.counts.tolist()):
    params = _at(res.snapshots, s)
    regions = relucomp.regions_2d(params, lo, hi)
    assert regions.count == count
    # Independent: points of a fine grid show at most that many patterns, and
    # at least one region per pattern they show.
    gx = np.linspace(lo[0], hi[0], 60)
    pts = np.stack(np.meshgrid(gx, np.linspace(lo[1], hi[1], 60)), -1).reshape(-1, 2)
    seen = _clear_patterns(params, pts)
    assert 2 <= len(seen) <= count
  last = relucomp.mlp_apply(_at(res.snapshots, -1), np.asarray(x, np.float64))
  np.testing.assert_allclose(last, relucomp.mlp_apply(res.params, x), atol=1e-5)
  with pytest.raises(ValueError, match="merge=True"):
    relucomp.pieces_history(res, merge=True)


def test_requires_snapshots(key):
  x = jnp.linspace(0.0, 1.0, 20)
  res = relucomp.fit(x, x**2, key=key, depth=2, pretrain_steps=5, finetune_steps=5)
  with pytest.raises(ValueError, match="track_pieces_every"):
    relucomp.pieces_history(res)
