"""``balance_neurons``: the same function, every hidden neuron's weights balanced."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, strategies as st

import relucomp
from _reference import numpy_preactivations
from conftest import enable_x64


def _numpy_forward(params, x):
  return numpy_preactivations(params, x)[-1]


def _numpy_balanced(params):
  """The documented rule, neuron by neuron, in plain Python and NumPy."""
  layers = [{k: np.array(v, np.float64) for k, v in layer.items()} for layer in params]
  factors = []
  for k in range(len(layers) - 1):
    row = []
    for j in range(layers[k]["kernel"].shape[1]):
      fan_in = float(np.sum(layers[k]["kernel"][:, j] ** 2) + layers[k]["bias"][j] ** 2)
      fan_out = float(np.sum(layers[k + 1]["kernel"][j, :] ** 2))
      row.append((fan_out / fan_in) ** 0.25 if fan_in > 0 and fan_out > 0 else 1.0)
    factors.append(np.array(row))
  for k, alpha in enumerate(factors):
    layers[k]["kernel"] = layers[k]["kernel"] * alpha
    layers[k]["bias"] = layers[k]["bias"] * alpha
    layers[k + 1]["kernel"] = layers[k + 1]["kernel"] / alpha[:, None]
  return layers


def _random_mlp(rng, sizes, dtype=np.float64):
  return [{"kernel": rng.normal(size=(a, b)).astype(dtype) * 10.0 ** rng.uniform(-1, 1),
           "bias": rng.normal(size=(b,)).astype(dtype)} for a, b in zip(sizes[:-1], sizes[1:])]


@given(seed=st.integers(0, 2 ** 31 - 1),
       sizes=st.lists(st.integers(1, 6), min_size=2, max_size=5),
       jit=st.booleans())
def test_same_function_and_the_documented_rule_float64(seed, sizes, jit):
  rng = np.random.default_rng(seed)
  params = _random_mlp(rng, sizes)
  x = rng.uniform(-3, 3, size=(50, sizes[0]))
  with enable_x64(True):
    fn = jax.jit(relucomp.balance_neurons) if jit else relucomp.balance_neurons
    out = fn(params)
    np.testing.assert_allclose(np.asarray(relucomp.mlp_apply(out, x)), _numpy_forward(params, x),
                               rtol=1e-10, atol=1e-10)
    expected = _numpy_balanced(params)
    for got, want in zip(out, expected):
      np.testing.assert_allclose(np.asarray(got["kernel"]), want["kernel"], rtol=1e-12)
      np.testing.assert_allclose(np.asarray(got["bias"]), want["bias"], rtol=1e-12)


def test_one_hidden_layer_ends_exactly_balanced(rng, x64):
  params = _random_mlp(rng, (3, 7, 2))
  out = relucomp.balance_neurons(params)
  fan_in = np.sum(np.asarray(out[0]["kernel"]) ** 2, 0) + np.asarray(out[0]["bias"]) ** 2
  fan_out = np.sum(np.asarray(out[1]["kernel"]) ** 2, 1)
  np.testing.assert_allclose(fan_in, fan_out, rtol=1e-12)


def test_compositional_network_keeps_its_function_and_pieces(dtype):
  peaks = jnp.asarray([0.3, 0.7, 0.45, 0.6, 0.5, 0.4], dtype)
  params = relucomp.compositional_mlp(peaks, relucomp.enforced_scales(peaks, 0.2))
  out = relucomp.balance_neurons(params)
  assert all(layer["kernel"].dtype == dtype for layer in out)
  x = np.linspace(0, 1, 301)
  tol = 1e-12 if dtype == np.float64 else 2e-6
  np.testing.assert_allclose(np.asarray(relucomp.mlp_apply(out, x[:, None]), np.float64),
                             _numpy_forward(params, x[:, None]), atol=tol)
  if dtype == np.float64:
    assert relucomp.linear_pieces_1d(out, 0.0, 1.0).count == 2 ** 5
  # The weights of the construction spread over orders of magnitude less after balancing.
  def spread(ps):
    w = np.concatenate([np.abs(np.asarray(l["kernel"])).ravel() for l in ps])
    w = w[w > 0]
    return w.max() / w.min()
  assert spread(out) < spread(params)


def test_dead_neurons_keep_their_weights_and_input_is_not_modified(rng, x64):
  params = _random_mlp(rng, (2, 4, 3, 1))
  params[0]["kernel"][:, 1] = 0.0
  params[0]["bias"][1] = 0.0            # neuron 1 of layer 1: no incoming weight
  params[2]["kernel"][2, :] = 0.0       # neuron 2 of layer 2: no outgoing weight
  before = [{k: v.copy() for k, v in layer.items()} for layer in params]
  out = relucomp.balance_neurons(params)
  for a, b in zip(params, before):
    np.testing.assert_array_equal(a["kernel"], b["kernel"])
    np.testing.assert_array_equal(a["bias"], b["bias"])
  for got, want in zip(out, _numpy_balanced(before)):   # alpha = 1 for both
    np.testing.assert_allclose(np.asarray(got["kernel"]), want["kernel"], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(got["bias"]), want["bias"], rtol=1e-12)
  assert np.all(np.isfinite(np.concatenate([np.asarray(l["kernel"]).ravel() for l in out])))


def test_vmap_over_a_batch_of_networks(rng, x64):
  nets = [_random_mlp(rng, (1, 4, 4, 1)) for _ in range(3)]
  stacked = jax.tree.map(lambda *a: jnp.stack(a), *nets)
  batched = jax.vmap(relucomp.balance_neurons)(stacked)
  for i, net in enumerate(nets):
    one = relucomp.balance_neurons(net)
    for got, want in zip(batched, one):
      np.testing.assert_allclose(np.asarray(got["kernel"][i]), np.asarray(want["kernel"]),
                                 rtol=1e-14)


@pytest.mark.parametrize("bad, match", [
    ([], "non-empty list"),
    ([{"kernel": np.ones((2, 3)), "bias": np.ones(2)}], r"bias.*\(n_out,\)"),
    ([{"kernel": np.ones((1, 3)), "bias": np.ones(3)},
      {"kernel": np.ones((2, 1)), "bias": np.ones(1)}], "must chain"),
    ([{"kernel": np.ones((1, 3)), "bias": np.array([0.0, np.nan, 0.0])},
      {"kernel": np.ones((3, 1)), "bias": np.ones(1)}], r"params\[0\]\['bias'\] must be finite"),
    ([{"kernel": np.ones((1, 3)), "bias": np.ones(3)},
      {"kernel": np.full((3, 1), np.inf), "bias": np.ones(1)}],
     r"params\[1\]\['kernel'\] must be finite"),
])
def test_malformed_params_raise(bad, match):
  with pytest.raises(ValueError, match=match):
    relucomp.balance_neurons(bad)
