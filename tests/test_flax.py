"""from_flax: a flax nnx ReLU MLP as this library's params."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import relucomp


def _close(params, model, x, dtype):
  # Both sides sum the same products in another order (and, for merged or
  # written-out layers, with one more product): a few hundred units of
  # roundoff of the values' magnitude.
  want = np.asarray(model(x))
  got = np.asarray(relucomp.mlp_apply(params, x))
  tol = 1000 * np.finfo(dtype).eps * (1 + np.abs(want).max())
  np.testing.assert_allclose(got, want, rtol=0, atol=tol)


def test_sequential_of_linear_and_relu():
  # float32 here; float64 parameters in test_region_tools_take_a_flax_model.
  dtype = np.dtype(np.float32)
  rngs = nnx.Rngs(0)
  model = nnx.Sequential(nnx.Linear(6, 8, rngs=rngs, param_dtype=dtype), nnx.relu,
                         nnx.Linear(8, 5, rngs=rngs, param_dtype=dtype), jax.nn.relu,
                         nnx.Linear(5, 2, rngs=rngs, param_dtype=dtype))
  params = relucomp.from_flax(model)
  assert [p["kernel"].shape for p in params] == [(6, 8), (8, 5), (5, 2)]
  for layer, p in zip([model.layers[0], model.layers[2], model.layers[4]], params):
    np.testing.assert_array_equal(p["kernel"], layer.kernel[...])
    np.testing.assert_array_equal(p["bias"], layer.bias[...])
    assert p["kernel"].dtype == dtype
  _close(params, model, jax.random.normal(jax.random.key(1), (7, 6), dtype), dtype)


def test_compositional_dense_classifier_and_merged_layers():
  rngs = nnx.Rngs(2)
  # The layer of tests/test_layer.py (its compiled code is shared in a run).
  layer = relucomp.CompositionalDense(3, 2, depth=3, units=4, rngs=rngs)
  model = nnx.Sequential(layer, nnx.relu, nnx.Linear(2, 3, rngs=rngs))
  params = relucomp.from_flax(model)
  mlp = relucomp.layer_to_mlp(layer)
  # The layer's plain MLP, its output now a hidden layer, then the Linear.
  assert [p["kernel"].shape for p in params] == [p["kernel"].shape for p in mlp] + [(2, 3)]
  x = jax.random.normal(jax.random.key(3), (11, 3))
  _close(params, model, x, np.float32)
  # Affine layers with no ReLU between them are multiplied into one; nested
  # Sequentials, a bias-free layer, repeated ReLUs and ReLUs at both ends.
  model = nnx.Sequential(nnx.relu, nnx.Linear(3, 7, rngs=rngs),
                         nnx.Sequential(nnx.Linear(7, 3, rngs=rngs, use_bias=False),
                                        nnx.relu, nnx.relu),
                         layer, nnx.relu)
  params = relucomp.from_flax(model)
  assert params[0]["kernel"].shape == (3, 3)            # identity for the leading ReLU
  assert params[1]["kernel"].shape == (3, 3)            # 3 -> 7 -> 3 merged
  assert params[-1]["kernel"].shape == (2, 2)           # identity after the trailing ReLU
  _close(params, model, x, np.float32)
  single = nnx.Linear(3, 2, rngs=rngs)
  assert len(relucomp.from_flax(single)) == 1


def test_region_tools_take_a_flax_model(x64):
  rngs = nnx.Rngs(4)
  model = nnx.Sequential(nnx.Linear(16, 12, rngs=rngs, param_dtype=jnp.float64), nnx.relu,
                         nnx.Linear(12, 8, rngs=rngs, param_dtype=jnp.float64), nnx.relu,
                         nnx.Linear(8, 3, rngs=rngs, param_dtype=jnp.float64))
  params = relucomp.from_flax(model)
  assert all(p["kernel"].dtype == jnp.float64 for p in params)
  points = np.asarray(jax.random.normal(jax.random.key(5), (3, 16), jnp.float64))
  parts = relucomp.plane_regions(params, points)
  # On each region the model's Jacobian (autodiff of the flax model itself)
  # is the region's A; its value at the point is A x + c.
  centres = np.stack([p.mean(axis=0) for p in parts.vertices[:20]])
  x = jnp.asarray(points[0] + centres @ (points[1:] - points[0]))
  jac = np.asarray(jax.vmap(jax.jacfwd(model))(x))
  np.testing.assert_allclose(jac, parts.A[:20], rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(np.einsum("noi,ni->no", parts.A[:20], x) + parts.c[:20],
                             np.asarray(model(x)), rtol=1e-10, atol=1e-12)


class _Custom(nnx.Module):
  def __init__(self, rngs):
    self.dense = nnx.Linear(3, 2, rngs=rngs)

  def __call__(self, x):
    return nnx.relu(self.dense(x))


def test_not_a_relu_mlp_is_named():
  rngs = nnx.Rngs(0)
  cases = [
      (nnx.Sequential(nnx.Linear(4, 4, rngs=rngs), nnx.gelu, nnx.Linear(4, 1, rngs=rngs)),
       r"model.layers\[1\] is the function gelu \(an activation other than relu\)"),
      (nnx.Sequential(nnx.Conv(3, 4, (3, 3), rngs=rngs), nnx.relu),
       r"model.layers\[0\] is an nnx.Conv module"),
      (nnx.Sequential(nnx.Linear(4, 4, rngs=rngs),
                      nnx.Sequential(nnx.relu, nnx.LayerNorm(4, rngs=rngs))),
       r"model.layers\[1\].layers\[1\] is an nnx.LayerNorm module"),
      (nnx.Sequential(nnx.Dropout(0.5), nnx.Linear(4, 1, rngs=rngs)),
       r"model.layers\[0\] is an nnx.Dropout module"),
      (_Custom(rngs), r"model is an _Custom module"),
      (nnx.Sequential(nnx.Linear(4, 4, rngs=rngs), jax.jit(jax.nn.relu)),
       r"model.layers\[1\] is a function named relu that is not nnx.relu"),
      (nnx.Sequential(nnx.relu), "model has no nnx.Linear or CompositionalDense layer"),
      (nnx.Sequential(nnx.Linear(4, 3, rngs=rngs), nnx.relu, nnx.Linear(2, 1, rngs=rngs)),
       r"model.layers\[2\] takes 2 inputs but the layers before it give 3 outputs"),
      ("not a model", "model is a str"),
  ]
  for model, message in cases:
    with pytest.raises(ValueError, match=message):
      relucomp.from_flax(model)
  model = nnx.Sequential(nnx.Linear(4, 3, rngs=rngs), nnx.relu, nnx.Linear(3, 1, rngs=rngs))
  model.layers[2].kernel[...] = jnp.full((3, 1), jnp.nan)
  with pytest.raises(ValueError, match=r"model.layers\[2\].kernel must be finite"):
    relucomp.from_flax(model)
