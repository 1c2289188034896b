"""Levenberg-Marquardt steps: linear least squares against NumPy, the step rule,
fits with it as the stage-2 optimiser, bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import relucomp
from conftest import enable_x64
from _reference import numpy_preactivations


def _steps(tx, params, residual_fn, n, jit=False):
  """``n`` updates of ``tx``; returns the params, state and loss after each step."""
  update = jax.jit(tx.update, static_argnames=("residual_fn",)) if jit else tx.update
  state = tx.init(params)
  losses = []
  for _ in range(n):
    updates, state = update(None, state, params, residual_fn=residual_fn)
    params = optax.apply_updates(params, updates)
    losses.append(float(jnp.sum(jnp.ravel(residual_fn(params)) ** 2)))
  return params, state, losses


@pytest.mark.parametrize("jit", [False, True])
def test_linear_least_squares_matches_numpy_lstsq(x64, rng, jit):
  # Residuals linear in the parameters: a few damped Gauss-Newton steps land
  # on the least-squares solution, computed independently by NumPy.
  a = rng.normal(size=(40, 5))
  b = rng.normal(size=40)
  want = np.linalg.lstsq(a, b, rcond=None)[0]
  residual_fn = lambda p: jnp.asarray(a) @ jnp.concatenate([p["w"], p["c"]]) - jnp.asarray(b)
  params = {"w": jnp.zeros(4), "c": jnp.zeros(1)}
  params, state, _ = _steps(relucomp.levenberg_marquardt(), params, residual_fn, 6, jit)
  got = np.concatenate([np.asarray(params["w"]), np.asarray(params["c"])])
  np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
  assert int(state.accepted) >= 1


def test_step_rule_keeps_or_rejects_and_moves_the_damping(x64):
  # At the exact minimum no step lowers the loss: the update is zero and the
  # damping grows by `increase`; from elsewhere a kept step shrinks it by
  # `decrease`.
  residual_fn = lambda p: jnp.stack([p - 1.0, 2.0 * (p - 1.0), jnp.zeros_like(p)])
  tx = relucomp.levenberg_marquardt(damping=0.5, increase=4.0, decrease=5.0)
  state = tx.init(jnp.asarray(1.0))
  updates, state = tx.update(None, state, jnp.asarray(1.0), residual_fn=residual_fn)
  assert float(updates) == 0.0
  assert float(state.damping) == pytest.approx(2.0)
  assert int(state.accepted) == 0
  updates, state = tx.update(None, state, jnp.asarray(3.0), residual_fn=residual_fn)
  # Gram 5, damping 2 x 5: delta = (5 * 2) / (5 + 10) = 2/3.
  assert float(updates) == pytest.approx(-2.0 / 3.0)
  assert float(state.damping) == pytest.approx(0.4)
  assert int(state.accepted) == 1


def test_damping_stays_within_its_bounds(dtype):
  # Rejected steps (at the minimum) raise it to max_damping; kept steps (a
  # linear problem from far away) lower it to min_damping, not to zero.
  residual_fn = lambda p: jnp.atleast_1d(p)
  tx = relucomp.levenberg_marquardt(damping=1.0, increase=10.0, max_damping=50.0)
  _, state, _ = _steps(tx, jnp.asarray(0.0, dtype), residual_fn, 4)
  assert float(state.damping) == 50.0
  tx = relucomp.levenberg_marquardt(damping=1.0, decrease=1e3, min_damping=1e-7)
  lines = lambda p: jnp.array([1.0, -2.0]) * p - jnp.array([3.0, 1.0])
  _, state, _ = _steps(tx, jnp.asarray(1e6, dtype), lines, 3)
  assert int(state.accepted) == 3           # 1 -> 1e-3 -> 1e-6 -> 1e-9, held at 1e-7
  assert float(state.damping) == pytest.approx(1e-7, rel=1e-6)


def _mlp_residual(x, y):
  return lambda p: relucomp.mlp_apply(p, x[:, None])[:, 0] - y


_LM = relucomp.levenberg_marquardt()


@jax.jit
def _lm_step(params, state, x, y):
  """One step of ``_LM`` on an MLP's residuals (one program per network shape)."""
  updates, state = _LM.update(None, state, params, residual_fn=_mlp_residual(x, y))
  return optax.apply_updates(params, updates), state


@settings(max_examples=12)
@given(seed=st.integers(0, 2 ** 31 - 1), width=st.integers(1, 6),
       hidden=st.integers(1, 3))
def test_loss_never_increases_on_random_mlps(seed, width, hidden):
  # Random ReLU MLPs on random data, float64: every step keeps or lowers the
  # sum of squares (checked with an independent NumPy forward pass).
  with enable_x64():
    rng = np.random.default_rng(seed)
    sizes = [1] + [width] * hidden + [1]
    params = [{"kernel": jnp.asarray(rng.normal(size=(m, n))),
               "bias": jnp.asarray(rng.normal(size=n))} for m, n in zip(sizes, sizes[1:])]
    x = np.sort(rng.uniform(-1, 1, 25))
    y = np.sin(3 * x) + 0.1 * rng.normal(size=25)
    state = _LM.init(params)
    before = np.sum((numpy_preactivations(params, x[:, None])[-1][:, 0] - y) ** 2)
    for _ in range(5):
      params, state = _lm_step(params, state, x, y)
      after = np.sum((numpy_preactivations(params, x[:, None])[-1][:, 0] - y) ** 2)
      assert after <= before * (1 + 1e-12)
      before = after
    assert all(np.all(np.isfinite(np.asarray(l))) for l in jax.tree.leaves(params))


def test_dtype_follows_the_params(dtype):
  params = {"a": jnp.ones(3, dtype)}
  tx = relucomp.levenberg_marquardt()
  state = tx.init(params)
  assert state.damping.dtype == dtype
  updates, state = tx.update(None, state, params, residual_fn=lambda p: p["a"] - 2.0)
  assert updates["a"].dtype == dtype and state.damping.dtype == dtype
  np.testing.assert_allclose(updates["a"], np.ones(3) / (1 + 1e-3), rtol=1e-5)


def test_params_are_not_modified(x64):
  params = {"a": jnp.ones(2)}
  before = np.asarray(params["a"]).copy()
  tx = relucomp.levenberg_marquardt()
  tx.update(None, tx.init(params), params, residual_fn=lambda p: p["a"] - 3.0)
  np.testing.assert_array_equal(params["a"], before)


@pytest.mark.parametrize("kwargs, match", [
    ({"damping": 0.0}, "damping"),
    ({"damping": -1.0}, "damping"),
    ({"increase": 1.0}, "increase"),
    ({"decrease": 0.5}, "decrease"),
    ({"decrease": float("nan")}, "decrease"),
    ({"damping": 1.0, "max_damping": 0.5}, "max_damping"),
    ({"min_damping": 0.0}, "min_damping"),
    ({"damping": 1e-3, "min_damping": 1e-2}, "min_damping"),
    ({"increase": "2"}, "increase"),
])
def test_bad_settings_raise(kwargs, match):
  with pytest.raises(ValueError, match=match):
    relucomp.levenberg_marquardt(**kwargs)


def test_update_without_residual_fn_raises():
  tx = relucomp.levenberg_marquardt()
  params = jnp.ones(2)
  with pytest.raises(ValueError, match="residual_fn"):
    tx.update(params, tx.init(params), params)
  with pytest.raises(ValueError, match="params"):
    tx.update(params, tx.init(params), None, residual_fn=lambda p: p)


# ---------------------------------------------------------------------------
# As the stage-2 optimiser of fit.

def _data(n=60):
  x = jnp.linspace(-0.5, 1.5, n)
  return x, jnp.exp(2 * x)


def test_fit_with_levenberg_marquardt_stage_2(dtype):
  x, y = _data()
  x, y = x.astype(dtype), y.astype(dtype)
  kw = dict(key=jax.random.key(0), depth=3, pretrain_steps=100, finetune_steps=15)
  lm = relucomp.fit(x, y, optimizer=(None, relucomp.levenberg_marquardt()), **kw)
  adam = relucomp.fit(x, y, optimizer="adam", **kw)
  assert lm.optimizer == "custom" and lm.params[0]["kernel"].dtype == dtype
  # Stage 1 is the paper scheme's Adam stage in both (a given optimiser
  # selects that scheme; None keeps its Adam); stage 2 never increases the loss.
  np.testing.assert_allclose(lm.history[:100], adam.history[:100], rtol=1e-6)
  stage2 = np.asarray(lm.history[100:])
  assert np.all(np.diff(stage2) <= stage2[:-1] * 1e-5)
  assert float(lm.mse) <= float(stage2[-1]) * (1 + 1e-4)
  assert float(lm.mse) < 0.5 * float(lm.history[100])
  # The returned params predict on the raw scale with the reported MSE.
  pred = relucomp.mlp_apply(lm.params, x[:, None])[:, 0]
  np.testing.assert_allclose(float(jnp.mean((pred - y) ** 2)), float(lm.mse), rtol=1e-3)


def test_fit_with_levenberg_marquardt_vmaps_like_a_loop(x64):
  # float64: in float32 a step kept in one run and rejected in the other
  # (rounding) would make the two drift apart.
  x, y = _data(30)
  keys = jax.random.split(jax.random.key(1), 2)
  run = lambda k: relucomp.fit(x, y, key=k, depth=2, pretrain_steps=20, finetune_steps=5,
                               optimizer=(None, relucomp.levenberg_marquardt()))
  batched = jax.jit(jax.vmap(run))(keys)
  for i in range(2):
    single = run(keys[i])
    np.testing.assert_allclose(batched.mse[i], single.mse, rtol=1e-8)


@pytest.mark.parametrize("method", ["kaiming", "dc"])
def test_other_methods_take_levenberg_marquardt(method):
  x = jnp.linspace(-1.0, 1.0, 40)
  y = x ** 3 - x
  r = relucomp.fit(x, y, key=jax.random.key(2), method=method, depth=2,
                   pretrain_steps=30, finetune_steps=10,
                   optimizer=(None, relucomp.levenberg_marquardt()))
  tail = np.asarray(r.history[30:] if method == "dc" else r.history)
  assert np.all(np.diff(tail) <= tail[:-1] * 1e-5)
  assert not bool(r.diverged)


def test_none_pair_is_the_default():
  x, y = _data(30)
  kw = dict(key=jax.random.key(3), depth=2, pretrain_steps=10, finetune_steps=10)
  a = relucomp.fit(x, y, optimizer=(None, None), **kw)
  b = relucomp.fit(x, y, **kw)
  assert a.optimizer == "adam"
  np.testing.assert_array_equal(a.history, b.history)


@pytest.mark.parametrize("optimizer", [(None, "lm"), (None,) * 3, [optax.adam(1e-3), 1]])
def test_bad_optimizer_pair_raises(optimizer):
  x, y = _data(10)
  with pytest.raises(ValueError, match="optimizer"):
    relucomp.fit(x, y, key=jax.random.key(0), depth=1, pretrain_steps=1, finetune_steps=1,
                 optimizer=optimizer)
