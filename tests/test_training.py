"""Tests of relucomp.fit / save / load and the initialisers (small sizes)."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings, strategies as st

import relucomp
from relucomp import _engine, _fit, _fit_convex, _init

from conftest import enable_x64

DEPTH = 3
FROZEN = (optax.sgd(0.0), optax.sgd(0.0))   # one object: fits with it share a compilation
N1, N2 = 30, 30
METHODS = _fit.METHODS


def _data(n=40, lo=-2.0, hi=3.0):
  x = jnp.linspace(lo, hi, n)
  return x, 0.5 * jnp.exp(0.6 * x) + 2.0            # convex, off [0, 1] in x and y


def _fit(x, y, key, method, **kw):
  kw = {"depth": DEPTH, "pretrain_steps": N1, "finetune_steps": N2, **kw}
  return relucomp.fit(x, y, key=key, method=method, **kw)


def exact_pieces(params, lo, hi, tol=1e-9):
  """Independent exact count of the linear pieces of a 1-D MLP on [lo, hi].

  Splits [lo, hi] at every zero crossing of every neuron, layer by layer
  (float64 NumPy), then merges neighbours with the same affine map.
  """
  layers = [(np.asarray(l["kernel"], np.float64), np.asarray(l["bias"], np.float64))
            for l in params]
  pieces = [(lo, hi, np.ones(1), np.zeros(1))]      # interval, h = a x + b
  for kernel, bias in layers[:-1]:
    new = []
    for a0, b0, a, b in pieces:
      pa, pb = a @ kernel, b @ kernel + bias
      with np.errstate(divide="ignore", invalid="ignore"):
        roots = -pb / pa
      span = b0 - a0
      roots = np.sort(roots[np.isfinite(roots) & (roots > a0 + tol * span)
                            & (roots < b0 - tol * span)])
      edges = np.concatenate([[a0], roots, [b0]])
      for s, e in zip(edges[:-1], edges[1:]):
        mask = (pa * (s + e) / 2 + pb) > 0
        new.append((s, e, pa * mask, pb * mask))
    pieces = new
  kernel, bias = layers[-1]
  maps = [(s, e, (a @ kernel)[0], (b @ kernel + bias)[0]) for s, e, a, b in pieces]
  count, prev = 0, None
  for s, e, slope, icpt in maps:
    if e - s <= 0:
      continue
    scale = 1 + abs(slope) + abs(icpt)
    if prev is None or abs(slope - prev[0]) > tol * scale or abs(icpt - prev[1]) > tol * scale:
      count += 1
    prev = (slope, icpt)
  return count


@pytest.fixture(scope="module")
def results32():
  """One float32 fit per method on the base problem, shared by many tests."""
  with enable_x64(False):
    x, y = _data()
    key = jax.random.key(7)
    # The random initialisations need a larger step to move in 60 steps.
    lr = {"kaiming": 1e-2, "raai": 1e-2}
    return x, y, key, {m: _fit(x, y, key, m, learning_rate=lr.get(m)) for m in METHODS}


# ---------------------------------------------------------------------------
# Every method trains.

@pytest.mark.parametrize("method", METHODS)
def test_each_method_decreases_loss_float32(results32, method):
  x, y, _, res = results32
  r = res[method]
  assert r.params[0]["kernel"].dtype == jnp.float32
  assert r.history.shape == (N1 + N2,)
  assert not bool(r.diverged)
  # The second-order default of "no_pretrain" starts its history at the best
  # of four candidates already screened by 30 Levenberg-Marquardt steps each.
  gain = 1.0 if method == "no_pretrain" else 0.8
  assert float(r.mse) < gain * float(r.history[0])
  assert r.n_params == relucomp.count_params(r.params) == 4 * 2 + 20 * (DEPTH - 1) + 5


@pytest.mark.parametrize("method", METHODS)
def test_params_reproduce_mse_on_raw_inputs(results32, method):
  x, y, _, res = results32
  r = res[method]
  pred = relucomp.mlp_apply(r.params, x[:, None])[:, 0]
  np.testing.assert_allclose(float(jnp.mean((pred - y) ** 2)), float(r.mse), rtol=1e-3)
  np.testing.assert_allclose(np.asarray(r.interval), [-2.0, 3.0])


@pytest.fixture(scope="module")
def tracked64():
  """A float64 enforced fit (the paper's scheme: stage 1 trains the law's
  network) keeping snapshots every 5 steps."""
  with enable_x64(True):
    x, y = _data()
    r = _fit(x, y, jax.random.key(11), "enforced", track_pieces_every=5, optimizer="adam")
  return x, y, r


@pytest.mark.parametrize("method", ["enforced", "kaiming"])
def test_float64_keeps_dtype_and_trains(tracked64, x64, method):
  x, y = _data()
  r = (tracked64[2] if method == "enforced"
       else _fit(x, y, jax.random.key(3), method, learning_rate=1e-2))
  assert r.params[0]["kernel"].dtype == jnp.float64
  assert r.history.dtype == jnp.float64 and r.mse.dtype == jnp.float64
  assert float(r.mse) < 0.8 * float(r.history[0])
  pred = relucomp.mlp_apply(r.params, x[:, None])[:, 0]
  np.testing.assert_allclose(float(jnp.mean((pred - y) ** 2)), float(r.mse), rtol=1e-9)


def test_same_key_identical_different_keys_differ(results32):
  x, y, key, res = results32
  again = _fit(x, y, key, "enforced")
  for a, b in zip(jax.tree.leaves(res["enforced"]), jax.tree.leaves(again)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  other = _fit(x, y, jax.random.key(8), "enforced")
  assert not np.array_equal(np.asarray(other.history), np.asarray(again.history))


def test_compositional_setups_share_the_starting_network(results32):
  x, y, key, res = results32
  # The second-order default: both two-stage methods run the same stage 1
  # (the breakpoints of the same data-placed peaks); "no_pretrain" starts
  # from screened candidates instead (tests/test_accuracy.py).
  np.testing.assert_array_equal(np.asarray(res["enforced"].history[:N1]),
                                np.asarray(res["free_scales"].history[:N1]))


# ---------------------------------------------------------------------------
# The two stages, exactly (float64, against independent computations).

def test_enforced_keeps_2_pow_d_pieces_through_stage1(tracked64):
  x, y, r = tracked64
  with enable_x64(True):
    n_snap = 1 + (N1 + N2) // 5
    assert jax.tree.leaves(r.snapshots)[0].shape[0] == n_snap
    for j in range(N1 // 5 + 1):                   # snapshots after 0, 5, ..., N1 steps
      snap = jax.tree.map(lambda a: a[j], r.snapshots)
      assert exact_pieces(snap, -2.0, 3.0) == 2 ** DEPTH, j


def test_stage2_starts_from_the_stage1_function(tracked64):
  x, y, r = tracked64
  with enable_x64(True):
    p = r.pretrained
    assert p["peaks"].shape == (DEPTH + 1,) and p["scales"].shape == (DEPTH,)
    np.testing.assert_allclose(p["scales"], relucomp.enforced_scales(p["peaks"], p["scales"][0]),
                               rtol=1e-12)
    ylo, yhi = np.asarray(r.y_range)
    t = _engine.INSET + (1 - 2 * _engine.INSET) * (x + 2.0) / 5.0
    closed = ylo + (yhi - ylo) * (p["bias"] + relucomp.compositional(
        t, p["peaks"], p["scales"], slope=p["slope"]))
    start = jax.tree.map(lambda a: a[N1 // 5], r.snapshots)   # the MLP after stage 1
    net = relucomp.mlp_apply(start, x[:, None])[:, 0]
    np.testing.assert_allclose(net, closed, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(float(r.history[N1]), float(jnp.mean((closed - y) ** 2)),
                               rtol=1e-9)
    # Stage 1's last loss is of the parameters one step earlier: close, not equal.
    assert float(r.history[N1]) <= float(r.history[0])


# ---------------------------------------------------------------------------
# Transformations.

def test_jit_vmap_over_keys_and_targets_matches_loop(tracked64, x64):
  # float64, so that the batched and the single runs agree to rounding.
  x, y, r0 = tracked64
  keys = jnp.stack([jax.random.key(11), jax.random.key(8), jax.random.key(9)])
  ys = jnp.stack([y, 1.0 + x ** 2, -jnp.exp(0.5 * x)])
  run = lambda k, yy: _fit(x, yy, k, "enforced", track_pieces_every=5, optimizer="adam")
  batched = jax.jit(jax.vmap(run))(keys, ys)
  np.testing.assert_array_equal(np.asarray(batched.sign), [1.0, 1.0, -1.0])
  for i in range(3):
    single = r0 if i == 0 else run(keys[i], ys[i])
    for a, b in zip(jax.tree.leaves(batched), jax.tree.leaves(single)):
      np.testing.assert_allclose(a[i], b, rtol=1e-6, atol=1e-10)


# ---------------------------------------------------------------------------
# Optimisers and divergence.

def test_custom_optimizer_is_used():
  x, y = _data(n=10)
  r = relucomp.fit(x, y, key=jax.random.key(0), method="enforced", depth=1,
                   pretrain_steps=3, finetune_steps=3,
                   optimizer=FROZEN)
  assert r.optimizer == "custom"
  np.testing.assert_allclose(r.history, r.history[0], rtol=1e-5)


def test_optimizer_with_extra_args_lbfgs():
  # optax.lbfgs needs the loss value and a value function: fit passes them.
  x, y = _data(n=10)
  r = relucomp.fit(x, y, key=jax.random.key(0), method="enforced", depth=1,
                   pretrain_steps=3, finetune_steps=3,
                   optimizer=(optax.adam(1e-2), optax.lbfgs()))
  assert not bool(r.diverged)
  assert float(r.mse) < float(r.history[3])


def test_divergence_is_flagged():
  x, y = _data(n=10)
  with pytest.warns(RuntimeWarning, match="diverged"):
    r = relucomp.fit(x, y, key=jax.random.key(0), method="kaiming", depth=1,
                     pretrain_steps=3, finetune_steps=3, optimizer=optax.sgd(1e30))
  assert bool(r.diverged)
  assert not np.isfinite(float(r.mse))


# ---------------------------------------------------------------------------
# Curvature.

def test_concave_target_uses_added_waves(results32):
  x, y, key, res = results32
  r = _fit(x, -y, key, "enforced")
  assert float(r.sign) == -1.0
  assert float(r.pretrained["scales"][0]) < 0
  assert float(r.mse) < 0.8 * float(r.history[0])


def test_neither_convex_nor_concave_warns_naming_dc(results32):
  x, y, key, res = results32
  with pytest.warns(UserWarning, match="'dc'"):
    _fit(x, jnp.sin(2 * x), key, "enforced")
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    _fit(x, jnp.sin(2 * x), key, "enforced", curvature="convex")
    _fit(x, y, key, "enforced")                     # convex: no warning


_scores = jax.jit(_fit_convex.curvature_scores)


@settings(max_examples=10)
@given(st.floats(0.2, 3.0), st.floats(-2.0, 2.0), st.sampled_from([7, 40]))
def test_curvature_detection(c, b, n):
  t = jnp.linspace(0.0, 1.0, n)
  for z, expect in [(jnp.exp(c * t) + b * t, (True, False)),
                    (-jnp.exp(c * t) + b * t, (False, True)),
                    (jnp.sin(7 * t) + b * t, (False, False))]:
    convex, concave, _ = _scores(t[::-1], z[::-1])   # order of the points is irrelevant
    assert (bool(convex), bool(concave)) == expect


# ---------------------------------------------------------------------------
# Save and load.

def test_save_load_roundtrip_bit_exact(results32, tmp_path):
  for method in ("enforced", "kaiming"):
    r = results32[3][method]
    path = tmp_path / f"{method}.msgpack"
    relucomp.save(r, path)
    back = relucomp.load(path)
    assert (back.method, back.depth, back.pretrain_steps, back.finetune_steps) == (
        r.method, r.depth, r.pretrain_steps, r.finetune_steps)
    assert back.n_params == r.n_params
    assert jax.tree.structure(back) == jax.tree.structure(r)
    for a, b in zip(jax.tree.leaves(r), jax.tree.leaves(back)):
      assert np.asarray(a).dtype == np.asarray(b).dtype
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_save_load_with_snapshots(tracked64, tmp_path):
  _, _, r = tracked64
  with enable_x64(True):
    relucomp.save(r, tmp_path / "r.msgpack")
    back = relucomp.load(tmp_path / "r.msgpack")
    assert back.track_pieces_every == 5
    for a, b in zip(jax.tree.leaves(r), jax.tree.leaves(back)):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_load_rejects_corrupt_and_mismatched_files(results32, tmp_path):
  r = results32[3]["enforced"]
  path = tmp_path / "r.msgpack"
  relucomp.save(r, path)
  data = path.read_bytes()
  (tmp_path / "cut.msgpack").write_bytes(data[: len(data) // 2])
  with pytest.raises(ValueError, match="not a readable"):
    relucomp.load(tmp_path / "cut.msgpack")
  (tmp_path / "junk.msgpack").write_bytes(b"\xc1\x00garbage")
  with pytest.raises(ValueError):
    relucomp.load(tmp_path / "junk.msgpack")
  import flax.serialization
  (tmp_path / "other.msgpack").write_bytes(flax.serialization.msgpack_serialize({"a": 1}))
  with pytest.raises(ValueError, match="format"):
    relucomp.load(tmp_path / "other.msgpack")
  state = flax.serialization.msgpack_restore(data)
  state["version"] = 99
  (tmp_path / "v.msgpack").write_bytes(flax.serialization.msgpack_serialize(state))
  with pytest.raises(ValueError, match="version"):
    relucomp.load(tmp_path / "v.msgpack")
  # Missing and malformed fields behind a valid checksum: tests/test_io.py.
  with pytest.raises(ValueError, match="result"):
    relucomp.save({"params": r.params}, tmp_path / "x.msgpack")


# ---------------------------------------------------------------------------
# Bad input.

@pytest.mark.parametrize("kwargs, match", [
    ({"x": jnp.linspace(0, 1, 5), "y": jnp.zeros(4)}, "same length"),
    ({"x": jnp.zeros((5, 1)), "y": jnp.zeros((5, 1))}, "1-D"),
    ({"x": jnp.array([0.0, 1.0]), "y": jnp.array([0.0, 1.0])}, "at least 3"),
    ({"x": jnp.array([0.0, jnp.nan, 1.0])}, "x must be finite"),
    ({"y": jnp.array([0.0, jnp.inf, 1.0])}, "y must be finite"),
    ({"x": jnp.ones(3)}, "x must contain at least two distinct"),
    ({"depth": 0}, "depth"),
    ({"depth": 2.5}, "depth"),
    ({"pretrain_steps": -1}, "pretrain_steps"),
    ({"finetune_steps": -3}, "finetune_steps"),
    ({"pretrain_steps": 0, "finetune_steps": 0}, "at least 1"),
    ({"method": "sgd"}, "method"),
    ({"curvature": "wavy"}, "curvature"),
    ({"learning_rate": -1.0}, "learning_rate"),
    ({"learning_rate": (1e-3, 1e-3, 1e-3)}, "learning_rate"),
    ({"track_pieces_every": 0}, "track_pieces_every"),
    ({"optimizer": "sgd"}, "optimizer"),      # "adam" is the one string it takes
])
def test_bad_input_raises_value_error(kwargs, match):
  args = {"x": jnp.linspace(0, 1, 3), "y": jnp.array([0.0, 0.2, 1.0]),
          "key": jax.random.key(0), "depth": 1, "pretrain_steps": 1, "finetune_steps": 1}
  args.update(kwargs)
  with pytest.raises(ValueError, match=match):
    relucomp.fit(args.pop("x"), args.pop("y"), **args)


def test_inputs_are_not_modified():
  x = np.linspace(0, 1, 10)
  y = x ** 2
  x0, y0 = x.copy(), y.copy()
  relucomp.fit(x, y, key=jax.random.key(0), method="enforced", depth=1,
               pretrain_steps=3, finetune_steps=3,
               optimizer=FROZEN)
  np.testing.assert_array_equal(x, x0)
  np.testing.assert_array_equal(y, y0)


# ---------------------------------------------------------------------------
# Initialisers, statistically.

def test_kaiming_matches_pytorch_default(dtype):
  keys = jax.random.split(jax.random.key(1), 400)
  params = jax.vmap(lambda k: _init.kaiming_mlp(k, 2, dtype=dtype))(keys)
  for layer, (n_in, _) in zip(params, _init.mlp_shapes(2)):
    bound = 1 / np.sqrt(n_in)
    for name in ("kernel", "bias"):
      a = np.asarray(layer[name]).ravel()
      assert a.dtype == dtype
      assert a.min() >= -bound and a.max() <= bound
      np.testing.assert_allclose(a.mean(), 0.0, atol=4 * bound / np.sqrt(3 * a.size))
      np.testing.assert_allclose(a.var(), bound ** 2 / 3, rtol=0.1)
      # Uniform: a quarter of the mass in each quarter of [-bound, bound].
      hist = np.histogram(a, bins=4, range=(-bound, bound))[0] / a.size
      np.testing.assert_allclose(hist, 0.25, atol=0.04)


def test_raai_matches_its_definition(dtype):
  n_in, n_out = 4, 20000
  draw = jax.jit(lambda k: _init.raai_layer(k, n_in, n_out, dtype=dtype, parts=True))
  layer, (normal, index, beta) = draw(jax.random.key(2))
  normal, index, beta = map(np.asarray, (normal, index, beta))
  sigma2 = _init.RAAI_SIGMA ** 2 / n_in
  cov = np.cov(normal)                                # (n_in + 1) x (n_in + 1)
  np.testing.assert_allclose(np.diag(cov), sigma2, rtol=0.05)
  corr = cov / np.sqrt(np.outer(np.diag(cov), np.diag(cov)))
  off = corr[:n_in, :n_in][~np.eye(n_in, dtype=bool)]
  np.testing.assert_allclose(off, -1 / (n_in - 1), atol=0.03)   # anti-correlated weights
  np.testing.assert_allclose(corr[n_in, :n_in], 0.0, atol=0.03)  # independent bias
  # One entry per neuron, uniform over the n_in + 1 entries, is Beta(2, 1).
  np.testing.assert_allclose(np.bincount(index, minlength=n_in + 1) / n_out,
                             1 / (n_in + 1), atol=0.015)
  np.testing.assert_allclose([beta.mean(), beta.var()], [2 / 3, 1 / 18], rtol=0.03)
  np.testing.assert_allclose(np.mean(beta < 0.5), 0.25, atol=0.015)   # CDF u^2
  entries = np.concatenate([np.asarray(layer["kernel"]), np.asarray(layer["bias"])[None]])
  chosen = np.arange(n_in + 1)[:, None] == index[None, :]
  np.testing.assert_array_equal(entries[chosen], np.broadcast_to(beta, chosen.shape)[chosen])
  np.testing.assert_array_equal(entries[~chosen], normal[~chosen])
  # A whole network has one layer per fan-in, all of this form.
  net = _init.raai_mlp(jax.random.key(3), 2, dtype=dtype)
  assert [l["kernel"].shape for l in net] == [(1, 4), (4, 4), (4, 1)]
  assert all(l["kernel"].dtype == dtype for l in net)
