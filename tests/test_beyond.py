"""fit(method="dc"), fit(method="compositional") and multi-input "kaiming"."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import relucomp
from relucomp import _engine, _fit_dc, _fit_several
from test_layer import _closed_form_np, _layer_reference

DEPTH = 2
STEPS = dict(pretrain_steps=25, finetune_steps=25)


def _grid(n=12):
  g = np.linspace(-1.0, 1.0, n)
  xx, yy = np.meshgrid(g, g)
  return np.stack([xx.ravel(), yy.ravel()], axis=1)


def _radial(x):
  return np.sum(x ** 2, axis=1) ** 1.5


@pytest.fixture(scope="module")
def dc32():
  x = np.linspace(-1.0, 1.0, 60, dtype=np.float32)
  y = x ** 3 - x
  return x, y, relucomp.fit(x, y, key=jax.random.key(0), method="dc", depth=DEPTH, **STEPS)


@pytest.fixture(scope="module")
def comp32():
  x = _grid().astype(np.float32)
  y = _radial(x).astype(np.float32)
  res = relucomp.fit(x, y, key=jax.random.key(0), method="compositional", depth=DEPTH,
                     **STEPS)
  dense = relucomp.fit(x, y, key=jax.random.key(0), method="kaiming", depth=DEPTH, **STEPS)
  return x, y, res, dense


# -- dc ------------------------------------------------------------------------

def test_dc_result(dc32):
  x, y, res = dc32
  shapes = [p["kernel"].shape for p in res.params]
  assert shapes == [(1, 8)] + [(8, 8)] * (DEPTH - 1) + [(8, 1)]
  assert res.n_params == relucomp.count_params(res.params) == 8 + 8 + 72 * (DEPTH - 1) + 9
  assert res.method == "dc" and res.history.shape == (50,) and not bool(res.diverged)
  pred = relucomp.mlp_apply(res.params, x[:, None])[:, 0]
  np.testing.assert_allclose(float(jnp.mean((pred - y) ** 2)), float(res.mse), rtol=1e-4)
  assert res.mse < res.history[0]
  assert res.pretrained["peaks"].shape == (2, DEPTH + 1)
  assert res.pretrained["scales"].shape == (2, DEPTH)
  assert res.params[0]["kernel"].dtype == jnp.float32


def test_dc_stage2_starts_from_the_stage1_difference(x64):
  # With no stage-2 steps params are the stage-1 function, written as one
  # 8-wide MLP; compare with an independent NumPy closed form.
  x = np.linspace(-2.0, 3.0, 41)
  y = np.sin(2.0 * x)
  res = relucomp.fit(x, y, key=jax.random.key(3), method="dc", depth=3,
                     pretrain_steps=20, finetune_steps=0)
  assert res.params[0]["kernel"].dtype == jnp.float64
  m = {k: np.asarray(a) for k, a in res.pretrained.items()}
  t = _engine.INSET + (1 - 2 * _engine.INSET) * (x - x.min()) / (x.max() - x.min())
  z = (m["bias"] + _closed_form_np(t, m["peaks"][0], m["scales"][0], m["slope"])
       - _closed_form_np(t, m["peaks"][1], m["scales"][1], 0.0))
  want = y.min() + (y.max() - y.min()) * z
  got = np.asarray(relucomp.mlp_apply(res.params, x[:, None])[:, 0])
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
  for layer in res.params[1:-1]:  # the two networks sit side by side
    k = np.asarray(layer["kernel"])
    assert not k[:4, 4:].any() and not k[4:, :4].any()
  np.testing.assert_allclose(float(res.mse), float(np.mean((want - y) ** 2)), rtol=1e-9)
  # The region tools apply: F_a and F_b have 2^3 pieces each and their
  # interior knots (7 each, at random places) do not coincide.
  assert relucomp.linear_pieces_1d(res.params, x.min(), x.max()).count == 15


def test_dc_same_key_same_result_and_keys_differ(x64):
  x = np.linspace(0.0, 2.0, 30)
  y = np.cos(3.0 * x)
  kw = dict(method="dc", depth=DEPTH, pretrain_steps=10, finetune_steps=10)
  one = relucomp.fit(x, y, key=jax.random.key(0), **kw)
  again = relucomp.fit(x, y, key=jax.random.key(0), **kw)
  np.testing.assert_array_equal(np.asarray(again.params[0]["kernel"]),
                                np.asarray(one.params[0]["kernel"]))
  # vmap against a loop: tests/test_vmap_loop.py (with a derived tolerance).
  keys = jnp.stack([jax.random.key(0), jax.random.key(1)])
  both = jax.vmap(lambda k: relucomp.fit(x, y, key=k, **kw))(keys)
  assert both.mse[0] != both.mse[1]


def test_kaiming_with_width_matches_dc_parameter_count(dc32):
  x, y, res = dc32
  dense = relucomp.fit(x, y, key=jax.random.key(0), method="kaiming", depth=DEPTH,
                       width=8, **STEPS)
  assert dense.n_params == res.n_params
  assert [p["kernel"].shape for p in dense.params] == [p["kernel"].shape for p in res.params]
  pred = relucomp.mlp_apply(dense.params, x[:, None])[:, 0]
  np.testing.assert_allclose(float(jnp.mean((pred - y) ** 2)), float(dense.mse), rtol=1e-4)


def test_default_learning_rates_per_method(dc32, comp32):
  # dc's stage 2 starts close to the target and takes smaller steps than
  # compositional's; the result records the rates it used.
  _, _, res = dc32
  _, _, comp, dense = comp32
  np.testing.assert_allclose(np.asarray(res.learning_rate), [1e-2, 3e-4], rtol=1e-6)
  np.testing.assert_allclose(np.asarray(comp.learning_rate), [1e-2, 3e-4], rtol=1e-6)
  np.testing.assert_allclose(np.asarray(dense.learning_rate),
                             [_engine.DEFAULT_RANDOM_INIT_LEARNING_RATE] * 2, rtol=1e-6)
  assert _fit_dc.DEFAULT_LEARNING_RATE == (1e-2, 3e-4)


# -- several inputs ----------------------------------------------------------

def test_compositional_result(comp32):
  x, y, res, dense = comp32
  assert len(res.params) == 2 * DEPTH + 3
  assert res.n_params == _fit_several.compositional_param_count(2, width=4, depth=DEPTH)
  assert dense.n_params >= res.n_params
  assert dense.n_params == relucomp.count_params(dense.params)
  assert res.interval.shape == (2, 2) and res.history.shape == (50,)
  for r in (res, dense):
    pred = relucomp.mlp_apply(r.params, x)[:, 0]
    np.testing.assert_allclose(float(jnp.mean((pred - y) ** 2)), float(r.mse), rtol=1e-4)
    assert r.mse < r.history[0] and not bool(r.diverged)


def test_compositional_net_is_its_plain_mlp(x64):
  net = _fit_several.CompositionalNet(3, width=3, depth=2, rngs=nnx.Rngs(1),
                                 param_dtype=jnp.float64)
  x = np.random.default_rng(0).normal(size=(40, 3))
  want = _layer_reference(net.second, _layer_reference(net.first, x))
  np.testing.assert_allclose(np.asarray(net(x)), want, rtol=0, atol=1e-10)
  np.testing.assert_allclose(np.asarray(relucomp.mlp_apply(net.to_mlp(), x)), want,
                             rtol=0, atol=1e-10)
  net.set_stage("free")
  np.testing.assert_allclose(np.asarray(relucomp.mlp_apply(net.to_mlp(), x)), want,
                             rtol=0, atol=1e-10)


def test_compositional_vmap_over_keys(comp32):
  # vmap over keys trains the same models as one call per key. Checked with
  # Adam in stage 2 (the tolerance of the test before block Gauss-Newton
  # became the default): the default stage 2 keeps or rejects each step on a
  # comparison of two sums and solves systems that grow badly conditioned as
  # the damping falls, so the rounding differences of the two compiled
  # programs can change its path by more than this.
  x, y, _, _ = comp32
  fit = lambda k: relucomp.fit(x, y, key=k, method="compositional", depth=DEPTH,
                               optimizer=(None, optax.adam(3e-4)), **STEPS)
  res = fit(jax.random.key(0))
  both = jax.vmap(fit)(jnp.stack([jax.random.key(0), jax.random.key(5)]))
  np.testing.assert_allclose(np.asarray(both.mse[0]), np.asarray(res.mse), rtol=1e-3)
  assert both.mse[0] != both.mse[1]


def test_save_load_roundtrip(dc32, comp32, tmp_path):
  for res in (dc32[2], comp32[2]):
    path = tmp_path / f"{res.method}.msgpack"
    relucomp.save(res, path)
    back = relucomp.load(path)
    assert back.method == res.method and back.n_params == res.n_params
    for a, b in zip(jax.tree.leaves(back.params), jax.tree.leaves(res.params)):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# -- bad input -----------------------------------------------------------------

_X1 = np.linspace(0.0, 1.0, 10)
_X2 = np.stack([_X1, _X1[::-1] ** 2], axis=1)


@pytest.mark.parametrize("kwargs,match", [
    (dict(x=_X2, y=_X1, method="dc"), "method='dc' fits one input"),
    (dict(x=_X1, y=_X1, method="compositional"), "k >= 2"),
    (dict(x=_X2[:, :1], y=_X1, method="compositional"), "k >= 2"),
    (dict(x=_X2, y=_X1[:9], method="compositional"), "same number of points"),
    (dict(x=_X2, y=_X2, method="compositional"), "y must be a 1-D"),
    (dict(x=_X2[None], y=_X1, method="kaiming"), "shape"),
    (dict(x=np.where(_X2 > 0.5, np.nan, _X2), y=_X1, method="compositional"),
     "x must be finite"),
    (dict(x=_X1, y=np.where(_X1 > 0.5, np.inf, _X1), method="dc"), "y must be finite"),
    (dict(x=np.stack([_X1, np.ones(10)], 1), y=_X1, method="compositional"),
     "constant"),
    (dict(x=_X2, y=_X1, method="compositional", width=0), "width"),
    (dict(x=np.stack([_X1, _X1 ** 2, -_X1], 1), y=_X1, method="compositional",
          track_pieces_every=2), "track_pieces_every needs one or two"),
    (dict(x=_X1, y=_X1, method="enforced", width=8), "width applies"),
    (dict(x=_X2, y=_X1, method="enforced"), "1-D"),
    (dict(x=_X1, y=_X1, method="dc", learning_rate=-1.0), "learning_rate"),
    (dict(x=_X1, y=_X1, method="dcx"), "method must be one of"),
])
def test_bad_input_raises_value_error(kwargs, match):
  kwargs = {"key": jax.random.key(0), "depth": 2, "pretrain_steps": 1,
            "finetune_steps": 1, **kwargs}
  x, y = kwargs.pop("x"), kwargs.pop("y")
  x_copy = np.array(x, copy=True)
  with pytest.raises(ValueError, match=match):
    relucomp.fit(x, y, **kwargs)
  np.testing.assert_array_equal(x, x_copy)
