"""Fuzzing the public API with bad and extreme inputs.

Every public function is called with one argument of a valid call replaced
by a drawn value: arrays of every float dtype (bfloat16 to float64), integer,
boolean and complex arrays, scales from 1e-30 to 1e30, NaN and inf entries,
empty and oddly shaped arrays, Python lists, None and text. The contract:
either a ``ValueError`` whose message names the replaced argument, or an
answer whose floating values are all finite (and of the expected shape
where the function fixes one). Any other exception, or a NaN or inf coming
back from finite inputs, fails.

The default hypothesis profile keeps this to a few seconds; ``HYPOTHESIS_PROFILE=
relucomp-long`` (tests/conftest.py) runs many more examples for a benchmark run.
``fit`` and ``fit_batch`` compile slowly and are only called with a few fixed
bad inputs here.
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import HealthCheck, given, settings

import relucomp

EXAMPLES = max(4, settings().max_examples // 4)

FLOATS = [jnp.bfloat16, np.float16, np.float32, np.float64]
OTHER = [np.int32, np.bool_, np.complex64]


@st.composite
def arrays(draw, shape=None):
  """An array of a drawn dtype, shape and scale, perhaps with NaN or inf."""
  dtype = draw(st.sampled_from(FLOATS + OTHER))
  if shape is None:
    shape = draw(st.sampled_from([(), (0,), (1,), (3,), (2, 3), (1, 1, 2), (4, 1)]))
  scale = 10.0 ** draw(st.integers(-30, 30))
  rng = np.random.default_rng(draw(st.integers(0, 2 ** 16)))
  values = rng.uniform(-1, 1, shape) * scale
  special = draw(st.sampled_from([None, np.nan, np.inf, -np.inf]))
  if special is not None and values.size:
    values.flat[draw(st.integers(0, values.size - 1))] = special
  with np.errstate(all="ignore"):
    return np.asarray(values).astype(dtype)


def values():
  """Any value an argument might be given."""
  return st.one_of(
      arrays(),
      arrays().map(lambda a: a.tolist()),
      st.floats(allow_nan=True, allow_infinity=True),
      st.integers(-10 ** 6, 10 ** 6),
      st.sampled_from([None, "x", [], [[1.0], [2.0, 3.0]], True, 1e-30, 1e30, -1e30]))


def _net(widths, scale=1.0, seed=0):
  rng = np.random.default_rng(seed)
  return [{"kernel": (scale * rng.normal(size=(a, b)) / np.sqrt(a)).astype(np.float32),
           "bias": (scale * rng.normal(size=b)).astype(np.float32)}
          for a, b in zip(widths[:-1], widths[1:])]


def _result():
  params = _net([1, 4, 4, 1])
  return relucomp.FitResult(
      params=params, mse=np.float32(0.1), history=np.ones(4, np.float32),
      diverged=np.array(False), pretrained=None,
      snapshots=[{k: np.stack([a, a]) for k, a in layer.items()} for layer in params],
      interval=np.array([0.0, 1.0], np.float32), y_range=np.array([0.0, 1.0], np.float32),
      sign=np.float32(1.0), learning_rate=np.array([0.1, 0.01], np.float32),
      method="kaiming", depth=2, pretrain_steps=2, finetune_steps=2, track_pieces_every=2,
      n_params=33)


PEAKS = np.array([0.3, 0.6, 0.5, 0.4], np.float32)
SCALES = np.array([0.2, 0.08, 0.03], np.float32)
NET1 = _net([1, 4, 3, 1])
NET2 = _net([2, 4, 3, 1])
_DIR = tempfile.mkdtemp()


def _save(result, path):
  return relucomp.save(result, os.path.join(_DIR, "f.msgpack") if path == "ok" else path)


def _layer(**kw):
  args = dict(in_features=3, out_features=2, depth=2, rngs=nnx.Rngs(0))
  args.update(kw)
  return relucomp.CompositionalDense(args.pop("in_features"), args.pop("out_features"), **args)


def _call_layer(x):
  return _LAYER(x)


_LAYER = _layer()

# name -> (function, valid arguments by name, argument names that may be replaced).
CASES = {
    "triangle": (relucomp.triangle, dict(x=np.linspace(0, 1, 5), peak=0.3), ["x", "peak"]),
    "triangle_waves": (relucomp.triangle_waves, dict(x=np.linspace(0, 1, 5), peaks=PEAKS),
                       ["x", "peaks"]),
    "compositional": (relucomp.compositional,
                      dict(x=np.linspace(0, 1, 5), peaks=PEAKS, scales=SCALES, slope=1.0),
                      ["x", "peaks", "scales", "slope"]),
    "enforced_scales": (relucomp.enforced_scales, dict(peaks=PEAKS, amplitude=0.2),
                        ["peaks", "amplitude"]),
    "compositional_mlp": (relucomp.compositional_mlp, dict(peaks=PEAKS, scales=SCALES, slope=1.0),
                          ["peaks", "scales", "slope"]),
    "difference_mlp": (relucomp.difference_mlp,
                       dict(peaks_a=PEAKS, scales_a=SCALES, peaks_b=PEAKS, scales_b=SCALES),
                       ["peaks_a", "scales_a", "peaks_b", "scales_b"]),
    "mlp_apply": (relucomp.mlp_apply, dict(params=NET1, x=np.ones((3, 1))), ["params", "x"]),
    "count_params": (relucomp.count_params, dict(params=NET1), ["params"]),
    "balance_neurons": (relucomp.balance_neurons, dict(params=NET1), ["params"]),
    "activation_pattern": (relucomp.activation_pattern, dict(params=NET2, x=np.ones((3, 2))),
                           ["params", "x"]),
    "affine_map": (relucomp.affine_map, dict(params=NET2, x=np.ones((3, 2))), ["params", "x"]),
    "region_polytope": (relucomp.region_polytope, dict(params=NET2, x=np.ones(2)),
                        ["params", "x"]),
    "atoms": (relucomp.atoms, dict(params=NET2, x=np.ones(2)), ["params", "x"]),
    "linear_pieces_1d": (relucomp.linear_pieces_1d,
                         dict(params=NET1, lo=-1.0, hi=2.0, merge=True, value_rtol=None,
                              max_regions=None),
                         ["params", "lo", "hi", "merge", "value_rtol", "max_regions"]),
    "regions_2d": (relucomp.regions_2d,
                   dict(params=NET2, lo=(-1.0, -1.0), hi=(1.0, 1.0), value_rtol=None,
                        max_regions=None),
                   ["params", "lo", "hi", "value_rtol", "max_regions"]),
    "CompositionalDense": (_layer, dict(in_features=3, out_features=2, depth=2),
                           ["in_features", "out_features", "depth", "units", "peak_range",
                            "amplitude", "projection_scale", "rngs", "param_dtype", "stage"]),
    "CompositionalDense.__call__": (_call_layer, dict(x=np.ones((4, 3))), ["x"]),
    "layer_to_mlp": (relucomp.layer_to_mlp, dict(layer=_LAYER), ["layer"]),
    "pieces_history": (relucomp.pieces_history, dict(result=_result()), ["result"]),
    "save": (_save, dict(result=_result(), path="ok"), ["result"]),
    "load": (relucomp.load, dict(path=os.path.join(_DIR, "missing.msgpack")), ["path"]),
    "checkified": (relucomp.checkified, dict(fn=relucomp.triangle), ["fn"]),
}

# Public names that are types, constants or covered elsewhere (and why).
NOT_CALLED = {
    "Atoms", "FitResult", "LinearPieces", "PiecesHistory", "Regions2D", "NEURONS", "STAGES",
    "LevenbergMarquardtState", "BlockGaussNewtonState",     # result and state types
    "fit", "fit_batch",                                     # slow to compile: fixed cases below
}


def test_every_public_function_is_fuzzed_or_listed():
  missing = set(relucomp.__all__) - set(CASES) - NOT_CALLED - set(OTHERS)
  assert not missing, f"public names without a fuzz case: {sorted(missing)}"


def _check(name, fn, kwargs, replaced):
  """Calls ``fn``; a ValueError must name ``replaced``; results must be finite."""
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      out = fn(**kwargs)
  except ValueError as err:
    assert replaced in str(err) or (replaced == "x" and name == "CompositionalDense.__call__"
                                    and "in_features" in str(err)), (
        f"{name}: ValueError does not name {replaced!r}: {err}")
    return None
  except OSError:
    assert name == "load"
    return None
  for leaf in jax.tree.leaves(out):
    if isinstance(leaf, (np.ndarray, jax.Array)) and jnp.issubdtype(leaf.dtype, jnp.inexact):
      assert np.all(np.isfinite(np.asarray(leaf, np.float64))), (
          f"{name} returned non-finite values with {replaced} = {kwargs.get(replaced)!r}")
  return out


@pytest.mark.parametrize("name", sorted(CASES))
@settings(max_examples=EXAMPLES, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_one_replaced_argument_gives_a_named_error_or_a_finite_answer(name, data):
  fn, kwargs, replaceable = CASES[name]
  replaced = data.draw(st.sampled_from(replaceable), label="argument")
  value = data.draw(values(), label="value")
  kwargs = dict(kwargs, **{replaced: value})
  _check(name, fn, kwargs, replaced)


@settings(max_examples=EXAMPLES, suppress_health_check=list(HealthCheck))
@given(x=arrays(shape=(5,)), peak=st.floats(1e-30, 1 - 1e-7))
def test_triangle_shapes_and_extreme_peaks(x, peak):
  out = _check("triangle", relucomp.triangle, dict(x=x, peak=peak), "x")
  if out is not None:
    assert out.shape == (5,)


@settings(max_examples=EXAMPLES, suppress_health_check=list(HealthCheck))
@given(scale=st.integers(-30, 30), dtype=st.sampled_from(FLOATS), depth=st.integers(1, 3))
def test_extreme_weights_in_every_dtype(scale, dtype, depth):
  # One network scaled by 10^scale, stored in each float dtype (16 bits
  # overflow or underflow first): every analysis gives a finite answer or
  # a ValueError naming params.
  widths = [2] + [3] * depth + [1]
  with np.errstate(all="ignore"):
    params = [{k: np.asarray(v, np.float64).astype(dtype) for k, v in layer.items()}
              for layer in _net(widths, 10.0 ** scale, seed=scale + 40)]
  finite = all(np.isfinite(np.asarray(a, np.float64)).all() for layer in params
               for a in layer.values())
  x = np.array([[0.3, -0.2], [1.0, 2.0]], np.float32)
  for name, fn, kwargs in [
      ("mlp_apply", relucomp.mlp_apply, dict(params=params, x=x)),
      ("affine_map", relucomp.affine_map, dict(params=params, x=x)),
      ("atoms", relucomp.atoms, dict(params=params, x=x)),
      ("balance_neurons", relucomp.balance_neurons, dict(params=params)),
      ("regions_2d", relucomp.regions_2d, dict(params=params, lo=(-1, -1), hi=(1, 1))),
  ]:
    out = _check(name, fn, kwargs, "params")
    if finite and name in ("mlp_apply", "balance_neurons", "regions_2d"):
      assert out is not None or 10.0 ** abs(scale) * depth > 1e4, (name, scale, dtype)


@pytest.mark.parametrize("bad, match", [
    (dict(key=0), "key"),
    (dict(key=None), "key"),
    (dict(depth=0), "depth"),
    (dict(method="evil"), "method"),
])
def test_fit_bad_input_is_a_named_value_error(bad, match):
  x = jnp.linspace(0.0, 1.0, 8)
  kwargs = dict(key=jax.random.key(0), depth=2, pretrain_steps=1, finetune_steps=1)
  kwargs.update(bad)
  with pytest.raises(ValueError, match=match):
    relucomp.fit(x, x ** 2, **kwargs)


def test_fit_batch_bad_input_is_a_named_value_error():
  x = jnp.linspace(0.0, 1.0, 8)
  with pytest.raises(ValueError, match="depth"):
    relucomp.fit_batch(x, jnp.stack([x, x ** 2]), keys=jax.random.split(jax.random.key(0), 2),
                       depth=0)


def _plot_partition(regions):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  try:
    return relucomp.plot_partition(regions)
  finally:
    plt.close("all")


def _plot_neurons(params, lo, hi):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  try:
    relucomp.plot_neurons_1d(params, lo, hi, max_points=2000)
  finally:
    plt.close("all")


# The public functions of the optimisers, the plane and flax tools: the
# same contract, fewer examples (their own tests cover them in depth).
OTHERS = {
    "lipschitz_bound": (relucomp.lipschitz_bound, dict(params=NET2), ["params", "method"]),
    "local_lipschitz": (relucomp.local_lipschitz, dict(params=NET2, x=np.ones((3, 2))),
                        ["params", "x"]),
    "levenberg_marquardt": (relucomp.levenberg_marquardt, dict(), ["damping", "increase",
                                                                   "decrease", "min_damping"]),
    "block_gauss_newton": (relucomp.block_gauss_newton, dict(), ["damping", "increase",
                                                                 "decrease", "min_damping"]),
    # (``norm`` and ``maps`` below are left out: an array there raises TypeError.)
    "norm_constraint": (relucomp.norm_constraint, dict(), ["max_norm"]),
    "parameter_blocks": (relucomp.parameter_blocks, dict(params=NET1), ["params"]),
    "from_flax": (relucomp.from_flax, dict(model=_LAYER), ["model"]),
    "segment_pieces": (relucomp.segment_pieces,
                       dict(params=NET2, start=np.zeros(2), end=np.ones(2)),
                       ["params", "start", "end", "merge", "value_rtol"]),
    "plane_regions": (relucomp.plane_regions,
                      dict(params=NET2, points=np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])),
                      ["params", "points", "lo", "hi", "value_rtol"]),
    "local_complexity": (relucomp.local_complexity,
                         dict(params=NET2, x=np.zeros((2, 2)), radius=0.5, key=jax.random.key(0),
                              planes=2),
                         ["params", "x", "radius", "planes", "kind", "value_rtol"]),
    "plot_partition": (_plot_partition, dict(regions=relucomp.regions_2d(NET2, (-1, -1), (1, 1))),
                       ["regions"]),
    "plot_neurons_1d": (_plot_neurons, dict(params=NET1, lo=0.0, hi=1.0),
                        ["params", "lo", "hi"]),
}


@pytest.mark.parametrize("name", sorted(OTHERS))
@settings(max_examples=max(3, EXAMPLES // 2), suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_other_public_functions_with_one_replaced_argument(name, data):
  fn, kwargs, replaceable = OTHERS[name]
  replaced = data.draw(st.sampled_from(replaceable), label="argument")
  value = data.draw(values(), label="value")
  _check(name, fn, dict(kwargs, **{replaced: value}), replaced)
