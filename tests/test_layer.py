"""CompositionalDense, layer_to_mlp and difference_mlp."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st

import relucomp
from conftest import enable_x64


def _tent(x, a):
  return np.minimum(x / a, (1 - x) / (1 - a))


def _closed_form_np(x, peaks, scales, slope):
  """Independent NumPy closed form slope*x - sum s_i W_i(x) on [0, 1]."""
  w = np.asarray(x, np.float64)
  out = slope * w
  for a, s in zip(peaks, scales):
    w = _tent(w, a)
    out = out - s * w
  return out


def _law_np(peaks, amplitude):
  s = [amplitude]
  for i in range(1, len(peaks) - 1):
    s.append(s[-1] * (1 - peaks[i]) * peaks[i + 1])
  return np.array(s)


def _layer_reference(layer, x):
  """The layer's function from its stage-1 parameters, in NumPy float64."""
  x = np.asarray(x, np.float64)
  proj = np.asarray(layer.projection_kernel[...], np.float64)
  q = np.asarray(layer.projection_bias[...], np.float64)
  z = np.clip(x @ proj + q, 0.0, 1.0)
  lo, hi = layer.peak_range
  peaks = lo + (hi - lo) / (1 + np.exp(-np.asarray(layer.peak_logits[...], np.float64)))
  amps = np.log1p(np.exp(np.asarray(layer.amplitude_logits[...], np.float64)))
  slope = np.asarray(layer.slope[...], np.float64)
  phi = np.empty_like(z)
  for j in range(layer.units):
    fa = _closed_form_np(z[:, j], peaks[j, 0], _law_np(peaks[j, 0], amps[j, 0]), slope[j])
    fb = _closed_form_np(z[:, j], peaks[j, 1], _law_np(peaks[j, 1], amps[j, 1]), 0.0)
    phi[:, j] = fa - fb
  return (phi @ np.asarray(layer.combine_kernel[...], np.float64)
          + np.asarray(layer.combine_bias[...], np.float64))


def _make(in_f=3, out_f=2, *, depth=3, units=4, seed=0, dtype=None, **kw):
  dtype = dtype or (jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)
  return relucomp.CompositionalDense(in_f, out_f, depth=depth, units=units,
                                     rngs=nnx.Rngs(seed), param_dtype=dtype, **kw)


def _n_params(module):
  return sum(a.size for a in jax.tree.leaves(nnx.state(module, nnx.Param)))


# -- difference_mlp -----------------------------------------------------------

@settings(max_examples=8)
@given(depth=st.integers(1, 5), seed=st.integers(0, 2**31 - 1),
       amps=st.tuples(st.floats(-2, 2), st.floats(-2, 2)),
       slopes=st.tuples(st.floats(-3, 3), st.floats(-3, 3)))
def test_difference_mlp_equals_closed_form(depth, seed, amps, slopes):
  rng = np.random.default_rng(seed)
  pa, pb = rng.uniform(0.05, 0.95, (2, depth + 1))
  sa, sb = _law_np(pa, amps[0]), _law_np(pb, amps[1])
  x = np.linspace(0.0, 1.0, 257)
  want = (_closed_form_np(x, pa, sa, slopes[0]) - _closed_form_np(x, pb, sb, slopes[1]))
  with enable_x64():
    params = relucomp.difference_mlp(pa, sa, pb, sb, slope_a=slopes[0], slope_b=slopes[1])
    got = np.asarray(relucomp.mlp_apply(params, x[:, None])[:, 0])
    shapes = [p["kernel"].shape for p in params]
    hidden = [np.asarray(p["kernel"]) for p in params[1:-1]]
  assert shapes == [(1, 8)] + [(8, 8)] * (depth - 1) + [(8, 1)]
  for k in hidden:  # the two networks never mix
    assert not k[:4, 4:].any() and not k[4:, :4].any()
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)


def test_difference_mlp_float32_close_to_float64():
  pa, pb = np.array([0.3, 0.7, 0.4, 0.6]), np.array([0.6, 0.2, 0.5, 0.5])
  sa, sb = _law_np(pa, 0.4), _law_np(pb, 0.3)
  x = np.linspace(0, 1, 101)[:, None]
  params32 = relucomp.difference_mlp(pa.astype(np.float32), sa.astype(np.float32),
                                     pb.astype(np.float32), sb.astype(np.float32))
  got = relucomp.mlp_apply(params32, x.astype(np.float32))
  assert got.dtype == jnp.float32
  want = _closed_form_np(x[:, 0], pa, sa, 1.0) - _closed_form_np(x[:, 0], pb, sb, 0.0)
  np.testing.assert_allclose(np.asarray(got)[:, 0], want, atol=2e-6)


def test_difference_mlp_bad_input():
  p, s = np.array([0.5, 0.5, 0.5]), np.array([0.2, 0.05])
  with pytest.raises(ValueError, match="same length"):
    relucomp.difference_mlp(p, s, p[:2], s[:1])
  with pytest.raises(ValueError, match="peaks_b"):
    relucomp.difference_mlp(p, s, np.array([0.5, 1.5, 0.5]), s)
  with pytest.raises(ValueError, match="scales_a"):
    relucomp.difference_mlp(p, np.array([np.nan, 0.1]), p, s)


# -- the layer: exactness ----------------------------------------------------

@pytest.mark.parametrize("depth,units,in_f,out_f", [(1, 3, 2, 1), (3, 4, 3, 2)])
def test_layer_equals_closed_form_and_plain_mlp(x64, depth, units, in_f, out_f):
  layer = _make(in_f, out_f, depth=depth, units=units, seed=depth)
  # Wide inputs: about a third of the projections are clipped at 0 or 1.
  x = 3.0 * np.random.default_rng(1).normal(size=(300, in_f))
  y = np.asarray(layer(x))
  np.testing.assert_allclose(y, _layer_reference(layer, x), rtol=0, atol=1e-10)
  params = relucomp.layer_to_mlp(layer)
  np.testing.assert_allclose(np.asarray(relucomp.mlp_apply(params, x)), y,
                             rtol=0, atol=1e-10)
  layer.set_stage("free")
  np.testing.assert_allclose(np.asarray(layer(x)), y, rtol=0, atol=1e-10)


def test_layer_to_mlp_exact_after_free_training(x64):
  layer = _make(3, 2, depth=3, units=4)
  layer.set_stage("free")
  x = np.random.default_rng(2).normal(size=(64, 3))
  target = np.stack([np.sin(x[:, 0]), x[:, 1] * x[:, 2]], axis=1)
  opt = nnx.Optimizer(layer, optax.adam(1e-2), wrt=nnx.Param)
  for _ in range(5):
    grads = nnx.grad(lambda m: jnp.mean((m(x) - target) ** 2))(layer)
    opt.update(layer, grads)
  params = relucomp.layer_to_mlp(layer)
  shapes = [p["kernel"].shape for p in params]
  assert shapes == [(3, 8), (8, 32), (32, 32), (32, 32), (32, 2)]
  np.testing.assert_allclose(np.asarray(relucomp.mlp_apply(params, x)),
                             np.asarray(layer(x)), rtol=0, atol=1e-10)
  # Block structure survives training: 2 x 8 blocks, then 4 x 4 blocks.
  first = np.asarray(params[1]["kernel"]).reshape(4, 2, 4, 8)
  assert not (first * (1 - np.eye(4))[:, None, :, None]).any()
  for k in (params[2]["kernel"], params[3]["kernel"]):
    blocks = np.asarray(k).reshape(8, 4, 8, 4)
    off = blocks * (1 - np.eye(8))[:, None, :, None]
    assert not off.any()


def test_units_compute_a_difference_of_convex_functions(x64):
  layer = _make(1, 1, depth=4, units=1, seed=3)
  z = np.linspace(0.0, 1.0, 201)
  lo, hi = layer.peak_range
  peaks = np.asarray(layer.peaks())
  assert np.all((peaks > lo) & (peaks < hi))
  scales = np.asarray(layer.scales())
  assert np.all(scales > 0)  # positive amplitudes: both parts convex
  for n in range(2):
    np.testing.assert_allclose(scales[0, n], _law_np(peaks[0, n], scales[0, n, 0]),
                               rtol=1e-12)
    f = _closed_form_np(z, peaks[0, n], scales[0, n], 0.0)
    assert np.all(np.diff(f, 2) >= -1e-12)


# -- stages ------------------------------------------------------------------

def test_stage_switch(dtype):
  layer = _make(3, 2, depth=2, units=4, dtype=dtype)
  assert layer.stage == "reparameterised"  # depth 2: checks the counts below
  n1 = _n_params(layer)
  assert n1 == 3 * 4 + 4 + 4 * 2 * 3 + 4 * 2 + 4 + 4 * 2 + 2
  x = np.random.default_rng(0).normal(size=(16, 3)).astype(dtype)
  before = layer(x)
  layer.set_stage("free")
  layer.set_stage("free")  # no-op
  assert layer.stage == "free"
  # projection + combination, then per unit two subnetworks 1 -> 4 -> 4 -> 1
  assert _n_params(layer) == 3 * 4 + 4 + 4 * 2 + 2 + 4 * 2 * (8 + 20 + 5)
  assert all(a.dtype == dtype for a in jax.tree.leaves(nnx.state(layer, nnx.Param)))
  np.testing.assert_allclose(np.asarray(layer(x)), np.asarray(before),
                             atol=1e-5 if dtype == np.float32 else 1e-12)
  with pytest.raises(ValueError, match="go back"):
    layer.set_stage("reparameterised")
  with pytest.raises(ValueError, match="stage must be one of"):
    layer.set_stage("pretrain")
  with pytest.raises(ValueError, match="reparameterised"):
    layer.peaks()
  free = _make(3, 2, depth=2, units=4, dtype=dtype, stage="free")
  np.testing.assert_allclose(np.asarray(free(x)), np.asarray(before),
                             atol=1e-5 if dtype == np.float32 else 1e-12)


def test_float32_and_float64_agree():
  x = np.random.default_rng(4).normal(size=(50, 3))
  layer32 = _make(3, 2, depth=3, dtype=jnp.float32)
  y32 = layer32(x.astype(np.float32))
  assert y32.dtype == jnp.float32
  with enable_x64():
    layer64 = _make(3, 2, depth=3, dtype=jnp.float64)
    nnx.update(layer64, jax.tree.map(lambda a: a.astype(jnp.float64),
                                     nnx.state(layer32, nnx.Param)))
    y64 = layer64(x)
    assert y64.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(y64), _layer_reference(layer64, x),
                               rtol=0, atol=1e-10)
  np.testing.assert_allclose(np.asarray(y32), np.asarray(y64), rtol=1e-4, atol=1e-5)


# -- transformations and flax integration -------------------------------------

def test_jit_vmap_grad(dtype):
  layer = _make(3, 2, depth=3, dtype=dtype)
  x = np.random.default_rng(5).normal(size=(8, 3)).astype(dtype)
  eager = layer(x)
  jitted = nnx.jit(lambda m, x: m(x))(layer, x)
  np.testing.assert_allclose(np.asarray(jitted), np.asarray(eager), rtol=1e-6, atol=1e-6)
  mapped = nnx.vmap(lambda m, xi: m(xi), in_axes=(None, 0))(layer, x)
  np.testing.assert_allclose(np.asarray(mapped), np.asarray(eager), rtol=1e-6, atol=1e-6)
  leading = layer(x.reshape(2, 4, 3))
  assert leading.shape == (2, 4, 2)
  np.testing.assert_allclose(np.asarray(leading).reshape(8, 2), np.asarray(eager), rtol=1e-6)

  for stage in ("reparameterised", "free"):
    layer.set_stage(stage)
    grads = nnx.jit(nnx.grad(lambda m: jnp.sum(m(x) ** 2)))(layer)
    leaves = jax.tree.leaves(grads)
    assert leaves and all(np.all(np.isfinite(g)) for g in leaves)
    assert all(g.dtype == dtype for g in leaves)
    assert any(np.any(g != 0) for g in leaves)


def test_vmap_builds_an_ensemble(dtype):
  @nnx.split_rngs(splits=3)
  @nnx.vmap(in_axes=(0,), out_axes=0)
  def create(rngs):
    return relucomp.CompositionalDense(3, 2, depth=3, units=4, rngs=rngs, param_dtype=dtype)

  ensemble = create(nnx.Rngs(0))
  x = np.random.default_rng(6).normal(size=(5, 3)).astype(dtype)
  y = nnx.vmap(lambda m, x: m(x), in_axes=(0, None))(ensemble, x)
  assert y.shape == (3, 5, 2)
  assert not np.allclose(np.asarray(y[0]), np.asarray(y[1]))


@pytest.mark.parametrize("tx", [
    optax.adam(1e-2),
    optax.chain(optax.clip_by_global_norm(1.0),
                optax.sgd(optax.exponential_decay(2e-3, 10, 0.9), momentum=0.9)),
], ids=["adam", "clip+sgd-momentum-schedule"])
def test_sequential_trains_in_both_stages(tx):
  rngs = nnx.Rngs(0)
  model = nnx.Sequential(
      relucomp.CompositionalDense(3, 2, depth=3, units=4, rngs=rngs),
      nnx.relu,
      nnx.Linear(2, 1, rngs=rngs),
  )
  rng = np.random.default_rng(7)
  x = rng.uniform(-1, 1, size=(128, 3)).astype(np.float32)
  y = (x[:, :1] ** 2 - x[:, 1:2] ** 3 + x[:, 2:]).astype(np.float32)

  def loss_fn(m):
    return jnp.mean((m(x) - y) ** 2)

  @nnx.jit
  def step(m, opt):
    loss, grads = nnx.value_and_grad(loss_fn)(m)
    opt.update(m, grads)
    return loss

  opt = nnx.Optimizer(model, tx, wrt=nnx.Param)
  first = loss_fn(model)
  for _ in range(40):
    step(model, opt)
  stage1 = loss_fn(model)
  assert stage1 < first
  model.layers[0].set_stage("free")
  np.testing.assert_allclose(float(loss_fn(model)), float(stage1), rtol=1e-4)
  opt = nnx.Optimizer(model, tx, wrt=nnx.Param)
  for _ in range(40):
    step(model, opt)
  assert loss_fn(model) < stage1


# -- bad input ---------------------------------------------------------------

def test_call_bad_input():
  layer = _make(3, 2, depth=2)
  with pytest.raises(ValueError, match="in_features = 3"):
    layer(np.zeros((4, 2), np.float32))
  with pytest.raises(ValueError, match="in_features = 3"):
    layer(np.float32(1.0))
  bad = np.zeros((4, 3), np.float32)
  bad[1, 2] = np.nan
  copy = bad.copy()
  with pytest.raises(ValueError, match="x must be finite"):
    layer(bad)
  np.testing.assert_array_equal(bad, copy)  # input left as given
  bad[1, 2] = np.inf
  with pytest.raises(ValueError, match="x must be finite"):
    layer(bad)
  with pytest.raises(ValueError, match="in_features = 3"):
    nnx.jit(lambda m, x: m(x))(layer, np.zeros((4, 5), np.float32))


@pytest.mark.parametrize("kwargs,match", [
    (dict(in_features=0), "in_features"),
    (dict(out_features=2.0), "out_features"),
    (dict(depth=0), "depth"),
    (dict(units=True), "units"),
    (dict(stage="finetune"), "stage"),
    (dict(peak_range=(0.5, 0.2)), "peak_range"),
    (dict(peak_range=(0.0, 1.0)), "peak_range"),
    (dict(peak_range=0.5), "peak_range"),
    (dict(amplitude=0.0), "amplitude"),
    (dict(projection_scale=float("nan")), "projection_scale"),
])
def test_constructor_bad_input(kwargs, match):
  args = dict(in_features=3, out_features=2, depth=2)
  args.update(kwargs)
  in_f, out_f = args.pop("in_features"), args.pop("out_features")
  with pytest.raises(ValueError, match=match):
    relucomp.CompositionalDense(in_f, out_f, rngs=nnx.Rngs(0), **args)


def test_layer_to_mlp_bad_input():
  with pytest.raises(ValueError, match="CompositionalDense"):
    relucomp.layer_to_mlp(nnx.Linear(2, 2, rngs=nnx.Rngs(0)))
