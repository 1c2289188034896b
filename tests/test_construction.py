"""The triangle waves, the law and the compositional network (issue: foundation)."""

from __future__ import annotations

import flax.nnx as nnx
import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from jax.experimental import checkify

import relucomp
from jax.test_util import check_grads
from _reference import count_pieces_between, wave_breakpoints
from conftest import enable_x64


def _peaks(rng, d, lo=0.05, hi=0.95):
  return rng.uniform(lo, hi, d + 1)


def _net(params):
  f = jax.jit(lambda x: relucomp.mlp_apply(params, x[:, None])[:, 0])
  return lambda x: np.asarray(f(jnp.asarray(x)))


# --------------------------------------------------------------------------
# Triangle and waves


def test_triangle_values(dtype):
  a = 0.3
  x = jnp.array([0.0, 0.15, 0.3, 0.65, 1.0])
  out = relucomp.triangle(x, a)
  np.testing.assert_allclose(out, [0.0, 0.5, 1.0, 0.5, 0.0], atol=1e-6)
  assert out.dtype == dtype


def test_triangle_jit_and_vmap_agree(x64):
  x = jnp.linspace(0, 1, 11)
  peaks = jnp.array([0.2, 0.5, 0.7])
  eager = jnp.stack([relucomp.triangle(x, a) for a in peaks])
  np.testing.assert_array_equal(jax.vmap(relucomp.triangle, (None, 0))(x, peaks), eager)
  np.testing.assert_array_equal(jax.jit(relucomp.triangle)(x, peaks[0]), eager[0])


def test_waves_shape_and_range(dtype, rng):
  peaks = rng.uniform(0.1, 0.9, 5).astype(dtype)
  x = jnp.linspace(0, 1, 101, dtype=dtype).reshape(101, 1)
  waves = relucomp.triangle_waves(x, peaks)
  assert waves.shape == (5, 101, 1)
  assert waves.dtype == dtype
  assert float(waves.min()) >= -1e-6 and float(waves.max()) <= 1 + 1e-6


def test_waves_compose_triangles(x64, rng):
  peaks = rng.uniform(0.1, 0.9, 4)
  x = jnp.linspace(0, 1, 57)
  expected, w = [], x
  for a in peaks:
    w = relucomp.triangle(w, a)
    expected.append(w)
  np.testing.assert_allclose(relucomp.triangle_waves(x, peaks), jnp.stack(expected), atol=1e-15)


@pytest.mark.parametrize("d", [1, 3, 7, 10])
def test_wave_has_2_to_the_d_pieces(x64, rng, d):
  peaks = rng.uniform(0.2, 0.8, d)
  knots, values = wave_breakpoints(peaks)
  f = jax.jit(lambda x: relucomp.triangle_waves(x, peaks)[-1])
  np.testing.assert_allclose(f(jnp.asarray(knots)), values, atol=1e-10)
  assert count_pieces_between(lambda x: np.asarray(f(jnp.asarray(x))), knots) == 2**d


# --------------------------------------------------------------------------
# The law


def test_enforced_scales_follow_the_law(x64, rng):
  peaks = rng.uniform(0.05, 0.95, 9)
  s = np.asarray(relucomp.enforced_scales(peaks, -0.7))
  assert s.shape == (8,) and s[0] == -0.7
  for i in range(7):  # s_{i+1} = s_i (1 - a_{i+1}) a_{i+2}, 0-based indices
    np.testing.assert_allclose(s[i + 1], s[i] * (1 - peaks[i + 1]) * peaks[i + 2], rtol=1e-14)


@pytest.mark.parametrize("d", range(1, 13))
def test_yarotsky_special_case(x64, d):
  peaks = jnp.full(d + 1, 0.5)
  scales = relucomp.enforced_scales(peaks, 0.25)
  np.testing.assert_allclose(scales, 4.0 ** -np.arange(1, d + 1), rtol=1e-15)
  # F - x^2 is piecewise quadratic: its extremes are at the piece midpoints.
  x = np.linspace(0, 1, 2 ** (d + 2) + 1)
  net = _net(relucomp.compositional_mlp(peaks, scales))(x)
  assert np.max(np.abs(net - x**2)) <= 2.0 ** (-2 * d - 2) * (1 + 1e-9)


def _slopes(fn, knots):
  mid = 0.5 * (knots[:-1] + knots[1:])
  h = 0.25 * np.diff(knots)
  return (fn(mid + h) - fn(mid - h)) / (2 * h)


@pytest.mark.parametrize("amplitude", [0.4, -0.4])
def test_law_gives_convexity_and_shrinking_jumps(x64, rng, amplitude):
  peaks = rng.uniform(0.2, 0.8, 14)
  jumps = []
  for d in (4, 8, 12):
    scales = relucomp.enforced_scales(peaks[: d + 1], amplitude)
    knots, _ = wave_breakpoints(peaks[:d])
    slopes = _slopes(_net(relucomp.compositional_mlp(peaks[: d + 1], scales)), knots)
    steps = np.diff(slopes) * np.sign(amplitude)
    assert np.all(steps > 0), "convex for a positive amplitude, concave for a negative one"
    jumps.append(np.max(np.abs(steps)))
  assert jumps[0] > jumps[1] > jumps[2]
  assert jumps[2] < 0.25 * jumps[0]


# --------------------------------------------------------------------------
# The network equals the closed form


@pytest.mark.parametrize("d", range(1, 25))
def test_mlp_equals_closed_form_float64(x64, rng, d):
  x = jnp.linspace(0, 1, 2001)
  for amplitude in (rng.uniform(0.05, 2.0), -rng.uniform(0.05, 2.0)):
    peaks = _peaks(rng, d)
    scales = relucomp.enforced_scales(peaks, amplitude)
    slope = rng.normal()
    params = relucomp.compositional_mlp(peaks, scales, slope=slope)
    net = relucomp.mlp_apply(params, x[:, None])[:, 0]
    closed = relucomp.compositional(x, peaks, scales, slope=slope)
    np.testing.assert_allclose(net, closed, rtol=0, atol=1e-12)


@settings(max_examples=15)
@given(
    peaks=hnp.arrays(np.float64, st.integers(2, 16),
                     elements=st.floats(0.05, 0.95)),
    amplitude=st.floats(-3, 3).filter(lambda a: abs(a) > 1e-3),
    free=st.booleans(),
)
def test_property_mlp_equals_closed_form(peaks, amplitude, free):
  with enable_x64():
    d = peaks.size - 1
    if free:  # scales that do not follow the law, zeros allowed
      scales = amplitude * np.cos(np.arange(d) * 1.7) ** 2 * 0.5 ** np.arange(d)
      scales[d // 2] = 0.0
    else:
      scales = np.asarray(relucomp.enforced_scales(peaks, amplitude))
    x = np.linspace(0, 1, 513)
    net = np.asarray(relucomp.mlp_apply(relucomp.compositional_mlp(peaks, scales), x[:, None]))[:, 0]
    closed = np.asarray(relucomp.compositional(x, peaks, scales))
    np.testing.assert_allclose(net, closed, rtol=0, atol=1e-12 * (1 + np.abs(scales).sum() * 4.0**d))


@pytest.mark.parametrize("d", [1, 2, 5, 8, 11, 14])
@pytest.mark.parametrize("amplitude", [0.3, -0.3])
def test_mlp_has_exactly_2_to_the_d_pieces(x64, rng, d, amplitude):
  peaks = rng.uniform(0.25, 0.75, d + 1)
  params = relucomp.compositional_mlp(peaks, relucomp.enforced_scales(peaks, amplitude))
  knots, _ = wave_breakpoints(peaks[:d])
  assert count_pieces_between(_net(params), knots) == 2**d


@settings(max_examples=12)
@given(peaks=hnp.arrays(np.float64, st.integers(2, 9), elements=st.floats(0.2, 0.8)),
       amplitude=st.sampled_from([1.0, -0.05, 0.6]))
def test_property_pieces(peaks, amplitude):
  with enable_x64():
    d = peaks.size - 1
    params = relucomp.compositional_mlp(peaks, relucomp.enforced_scales(peaks, amplitude))
    knots, _ = wave_breakpoints(peaks[:d])
    assert count_pieces_between(_net(params), knots) == 2**d


def test_mlp_layout(dtype, rng):
  peaks = rng.uniform(0.1, 0.9, 6).astype(dtype)
  params = relucomp.compositional_mlp(peaks, relucomp.enforced_scales(peaks, 0.5))
  assert [p["kernel"].shape for p in params] == [(1, 4)] + [(4, 4)] * 4 + [(4, 1)]
  assert [p["bias"].shape for p in params] == [(4,)] * 5 + [(1,)]
  assert all(p["kernel"].dtype == dtype for p in params)
  assert relucomp.count_params(params) == 8 + 4 * 20 + 5


def test_deep_conditioning(rng):
  d = 30
  with enable_x64():
    peaks = rng.uniform(0.1, 0.9, d + 1)
    scales = relucomp.enforced_scales(peaks, 0.3)
    p64 = relucomp.compositional_mlp(peaks, scales)
    x64 = jnp.linspace(0, 1, 4001)
    out64 = relucomp.mlp_apply(p64, x64[:, None])[:, 0]
    np.testing.assert_allclose(out64, relucomp.compositional(x64, peaks, scales), atol=1e-10)
    assert max(float(jnp.max(jnp.abs(p["kernel"]))) for p in p64) < 20
  with enable_x64(False):
    p32 = relucomp.compositional_mlp(jnp.asarray(peaks, jnp.float32), jnp.asarray(scales, jnp.float32))
    out32 = relucomp.mlp_apply(p32, jnp.asarray(x64, jnp.float32)[:, None])[:, 0]
    assert out32.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(out32, np.float64), np.asarray(out64), atol=1e-5)


def test_float32_path(rng):
  with enable_x64(False):
    peaks = jnp.asarray(rng.uniform(0.1, 0.9, 9), jnp.float32)
    scales = relucomp.enforced_scales(peaks, -0.5)
    x = jnp.linspace(0, 1, 1001)
    net = jax.jit(lambda p, s: relucomp.mlp_apply(relucomp.compositional_mlp(p, s), x[:, None])[:, 0])(peaks, scales)
    assert net.dtype == jnp.float32
    np.testing.assert_allclose(net, relucomp.compositional(x, peaks, scales), atol=2e-6)


def test_jit_vmap_over_batches_of_peaks(x64, rng):
  batch = rng.uniform(0.1, 0.9, (6, 8))
  amps = rng.uniform(-1, 1, 6)
  x = jnp.linspace(0, 1, 301)

  def one(peaks, amp):
    s = relucomp.enforced_scales(peaks, amp)
    return relucomp.mlp_apply(relucomp.compositional_mlp(peaks, s), x[:, None])[:, 0]

  batched = jax.jit(jax.vmap(one))(batch, amps)
  loop = np.stack([one(p, a) for p, a in zip(batch, amps)])
  np.testing.assert_allclose(batched, loop, atol=1e-13)
  params = jax.vmap(lambda p, a: relucomp.compositional_mlp(p, relucomp.enforced_scales(p, a)))(batch, amps)
  assert params[0]["kernel"].shape == (6, 1, 4)


def test_gradients_match_finite_differences(x64, rng):
  x = jnp.asarray(rng.uniform(0.02, 0.98, 64))
  y = x**3

  @jax.jit
  def loss(peaks, scales, slope):
    pred = relucomp.mlp_apply(relucomp.compositional_mlp(peaks, scales, slope=slope), x[:, None])[:, 0]
    return jnp.mean((pred - y) ** 2)

  peaks = jnp.asarray(rng.uniform(0.2, 0.8, 6))
  scales = relucomp.enforced_scales(peaks, 0.4)
  check_grads(loss, (peaks[:5], scales, 1.2), order=1, modes=("rev", "fwd"), eps=1e-6)

  @jax.jit
  def law_loss(peaks, amp):
    pred = relucomp.compositional(x, peaks, relucomp.enforced_scales(peaks, amp))
    return jnp.mean((pred - y) ** 2)

  check_grads(law_loss, (peaks, 0.4), order=1, modes=("rev",), eps=1e-6)
  grads = jax.grad(loss, argnums=(0, 1))(peaks[:5], scales, 1.0)
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads)


def test_loads_into_flax(x64, rng):
  peaks = rng.uniform(0.1, 0.9, 5)
  params = relucomp.compositional_mlp(peaks, relucomp.enforced_scales(peaks, 0.3))
  layers = []
  for p in params:
    n_in, n_out = p["kernel"].shape
    lin = nnx.Linear(n_in, n_out, rngs=nnx.Rngs(0), param_dtype=jnp.float64)
    lin.kernel[...] = p["kernel"]
    lin.bias[...] = p["bias"]
    layers.append(lin)

  def model(h):
    for lin in layers[:-1]:
      h = jax.nn.relu(lin(h))
    return layers[-1](h)

  x = jnp.linspace(0, 1, 101)[:, None]
  np.testing.assert_allclose(model(x), relucomp.mlp_apply(params, x), atol=1e-14)


def test_inputs_not_modified(x64):
  peaks = np.array([0.3, 0.6, 0.5])
  scales = np.array([0.2, 0.05])
  before = (peaks.copy(), scales.copy())
  relucomp.compositional_mlp(peaks, scales)
  relucomp.compositional(np.linspace(0, 1, 5), peaks, scales)
  np.testing.assert_array_equal(peaks, before[0])
  np.testing.assert_array_equal(scales, before[1])


# --------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize("peaks, match", [
    ([0.0, 0.5], "peaks"), ([0.5, 1.0], "peaks"), ([0.5, 1.3], r"\(0, 1\)"),
    ([0.5, np.nan], "finite"), ([0.5, np.inf], "peaks"),
])
def test_bad_peaks(peaks, match):
  with pytest.raises(ValueError, match=match):
    relucomp.compositional_mlp(peaks, [0.1, 0.1])
  with pytest.raises(ValueError, match=match):
    relucomp.compositional(0.5, peaks, [0.1, 0.1])
  with pytest.raises(ValueError, match=match):
    relucomp.enforced_scales(peaks, 0.1)
  with pytest.raises(ValueError, match=match):
    relucomp.triangle_waves(0.5, peaks)


def test_bad_scales_and_lengths():
  with pytest.raises(ValueError, match="scales.*finite"):
    relucomp.compositional_mlp([0.5, 0.5], [0.1, np.nan])
  with pytest.raises(ValueError, match="length d or d \\+ 1"):
    relucomp.compositional_mlp([0.5, 0.5, 0.5, 0.5], [0.1, 0.1])
  with pytest.raises(ValueError, match="length d or d \\+ 1"):
    relucomp.compositional([0.2], [0.5], [0.1, 0.1])
  with pytest.raises(ValueError, match="depth"):
    relucomp.compositional_mlp([0.5], [])
  with pytest.raises(ValueError, match="depth"):
    relucomp.enforced_scales([0.5], 0.1)
  with pytest.raises(ValueError, match="amplitude"):
    relucomp.enforced_scales([0.5, 0.5], np.inf)
  with pytest.raises(ValueError, match="slope"):
    relucomp.compositional_mlp([0.5], [0.1], slope=np.nan)
  with pytest.raises(ValueError, match="peak"):
    relucomp.triangle(0.5, 1.0)
  with pytest.raises(ValueError, match="x must be finite"):
    relucomp.triangle(np.nan, 0.5)


def test_bad_mlp_shapes():
  good = relucomp.compositional_mlp([0.5, 0.5], [0.2, 0.05])
  with pytest.raises(ValueError, match="x must have shape"):
    relucomp.mlp_apply(good, jnp.ones((3, 2)))
  broken = [dict(layer) for layer in good]
  broken[1] = {"kernel": jnp.ones((3, 4)), "bias": jnp.ones(4)}
  with pytest.raises(ValueError, match=r"params\[1\]\['kernel'\] has n_in = 3"):
    relucomp.mlp_apply(broken, jnp.ones((3, 1)))
  broken[1] = {"kernel": jnp.ones((4, 4)), "bias": jnp.ones(3)}
  with pytest.raises(ValueError, match=r"params\[1\]\['bias'\]"):
    relucomp.mlp_apply(broken, jnp.ones((3, 1)))
  with pytest.raises(ValueError, match="non-empty list"):
    relucomp.mlp_apply([], jnp.ones((3, 1)))
  with pytest.raises(ValueError, match="kernel.*2-D"):
    relucomp.mlp_apply([{"kernel": jnp.ones(3), "bias": jnp.ones(3)}], jnp.ones((3, 1)))


def test_traced_values_are_not_checked_but_checkified_catches_them():
  bad_peaks = jnp.array([0.5, 1.5])
  # Under jit the values are abstract: no ValueError, as documented.
  jax.jit(relucomp.compositional_mlp)(bad_peaks, jnp.array([0.25]))
  checked = jax.jit(relucomp.checkified(relucomp.compositional_mlp))
  err, _ = checked(bad_peaks, jnp.array([0.25]))
  with pytest.raises(checkify.JaxRuntimeError, match="peaks"):
    err.throw()
  err, _ = checked(jnp.array([0.5, 0.5]), jnp.array([jnp.nan]))
  with pytest.raises(checkify.JaxRuntimeError, match="scales"):
    err.throw()
  err, params = checked(jnp.array([0.5, 0.5]), jnp.array([0.25]))
  err.throw()
  assert len(params) == 2
