"""A vmap of fits is a loop of fits, up to the rounding that training amplifies.

The tolerance of each comparison is ``_rounding.tolerance``: the same fit on
the data in reversed order differs from it only in the order of its sums,
as the batched program does, and shows how much this training amplifies
such a difference (see ``tests/_rounding.py``). Each test also bounds that
amplification, so that the comparison means something.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import relucomp
from _rounding import relative_difference, tolerance


def _compare(x, y, kw, keys, field="history"):
  batched = jax.vmap(lambda k: relucomp.fit(x, y, key=k, **kw))(keys)
  tols = []
  for i, k in enumerate(keys):
    run = lambda xx, yy: np.asarray(getattr(relucomp.fit(xx, yy, key=k, **kw), field))
    tol = tolerance(run, x, y)
    diff = relative_difference(np.asarray(getattr(batched, field))[i], run(x, y))
    assert diff <= tol, f"model {i}: vmap and loop differ by {diff:.3g} > {tol:.3g}"
    tols.append(tol)
  return max(tols)


def test_enforced_float32():
  # The first case is the one where a batched matrix product used to send
  # rounding differences into full Adam steps (mse 0.53 under vmap, 0.36 in
  # a loop): now both round the same but for the order of some sums.
  x = np.linspace(-1.0, 2.0, 25, dtype=np.float32)
  y = np.exp(x)
  keys = jax.random.split(jax.random.key(0), 3)
  kw = dict(depth=2, pretrain_steps=0, finetune_steps=1)
  # Short float32 runs amplify a reordering to well below a per cent.
  assert _compare(x, y, kw, keys) < 1e-2


@pytest.mark.parametrize("method,target", [("enforced", "cube"), ("dc", "cos")])
def test_both_stages_float64(x64, method, target):
  x = np.linspace(0.0, 2.0, 30)
  y = x ** 3 if target == "cube" else np.cos(3.0 * x)
  keys = jnp.stack([jax.random.key(0), jax.random.key(1)])
  kw = dict(method=method, depth=2, pretrain_steps=10, finetune_steps=10)
  # In float64 these runs amplify a reordering to far below any fit error.
  assert _compare(x, y, kw, keys) < 1e-5
