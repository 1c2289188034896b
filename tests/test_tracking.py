"""Exact piece counts through training (fit(..., track_pieces_every=k))."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import relucomp


def _fit(x, y, key, **kw):
  settings = dict(depth=3, pretrain_steps=30, finetune_steps=30, track_pieces_every=10)
  settings.update(kw)
  return relucomp.fit(x, y, key=key, **settings)


def test_enforced_keeps_2_to_the_d_pieces_in_stage_1(dtype, key):
  x = jnp.linspace(-2.0, 3.0, 80, dtype=dtype)
  res = _fit(x, jnp.exp(x), key)
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


def test_requires_snapshots(key):
  x = jnp.linspace(0.0, 1.0, 20)
  res = relucomp.fit(x, x**2, key=key, depth=2, pretrain_steps=5, finetune_steps=5)
  with pytest.raises(ValueError, match="track_pieces_every"):
    relucomp.pieces_history(res)
