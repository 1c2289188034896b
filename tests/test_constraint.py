"""norm_constraint: hidden kernels stay inside the norm ball through training.

Norms are checked by NumPy in float64 (an independent computation). LAPACK's
float64 SVD is backward stable: the computed largest singular value is within
about ``n eps64`` (relative) of the exact one, so "at most max_norm" is
asserted as ``<= max_norm (1 + n eps64)``; the transformation leaves a margin
of ``8 n eps`` of the kernel's own dtype, far larger than that.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import relucomp
from conftest import enable_x64

EPS64 = np.finfo(np.float64).eps
# One shape of network everywhere, so compiled programs are shared by the tests.
WIDTHS = [2, 6, 6, 6, 1]


def _norm(kernel, norm):
  k = np.asarray(kernel, np.float64)
  return np.linalg.norm(k, 2 if norm == "spectral" else "fro")


def _inside(kernel, max_norm, norm):
  n = max(np.shape(kernel))
  return _norm(kernel, norm) <= max_norm * (1 + n * EPS64)


def _net(seed, widths, dtype, scale=3.0):
  rng = np.random.default_rng(seed)
  return [{"kernel": jnp.asarray(scale * rng.normal(size=(a, b)) / np.sqrt(a), dtype),
           "bias": jnp.asarray(rng.normal(size=b), dtype)}
          for a, b in zip(widths[:-1], widths[1:])]


def _loss(params, x, y):
  return jnp.mean((relucomp.mlp_apply(params, x) - y) ** 2)


_value_and_grad = jax.jit(jax.value_and_grad(_loss))


def _train(tx, params, x, y, steps, jit):
  """Steps of ``tx``; returns the params after every step and the losses.

  Without ``jit`` the transformation and ``apply_updates`` run eagerly (the
  loss gradient is compiled either way: it is not what is tested)."""
  def step(params, state):
    loss, grads = _value_and_grad(params, x, y)
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state, loss
  step = jax.jit(step) if jit else step
  state, history, losses = tx.init(params), [], []
  for _ in range(steps):
    params, state, loss = step(params, state)
    history.append(params)
    losses.append(float(loss))
  return history, losses


# Each dtype with both norms and both paths (jit and eager), in four runs.
@pytest.mark.parametrize("dtype_name,norm,jit", [
    ("float32", "spectral", True), ("float32", "frobenius", False),
    ("float64", "spectral", False), ("float64", "frobenius", True)])
def test_constraint_holds_after_every_step(dtype_name, norm, jit):
  with enable_x64(dtype_name == "float64"):
    _check_steps(np.dtype(dtype_name), norm, jit)


def _check_steps(dtype, norm, jit):
  params = _net(0, WIDTHS, dtype)
  x = jnp.asarray(np.random.default_rng(1).uniform(-1, 1, (32, 2)), dtype)
  y = jnp.sum(x ** 2, axis=1, keepdims=True)
  max_norm = 0.8
  tx = optax.chain(optax.adam(5e-2), relucomp.norm_constraint(max_norm=max_norm, norm=norm))
  history, losses = _train(tx, params, x, y, 3, jit)
  for p in history:
    assert all(_inside(layer["kernel"], max_norm, norm) for layer in p[1:-1])
    assert all(layer["kernel"].dtype == dtype for layer in p)
  # The first step lands on the projection of the unconstrained step (NumPy:
  # clip the singular values, or scale). The transformation aims at radius
  # max_norm (1 - 8 n eps) - 3 eps ||K||_F; the SVD is the exact one of a
  # matrix within about n eps ||M|| of M = K + U (backward stability; the
  # projection is 1-Lipschitz), and the two additions add about
  # 4 eps (||K||_F + max_norm): a tolerance of 16 n eps (max_norm + ||K||_F).
  eps = float(np.finfo(dtype).eps)
  free = optax.adam(5e-2)
  _, grads = _value_and_grad(params, x, y)
  step, _ = free.update(grads, free.init(params), params)
  for i in (1, 2):
    k = np.asarray(params[i]["kernel"], np.float64)
    m = k + np.asarray(step[i]["kernel"], np.float64)
    if norm == "spectral":
      u, s, vt = np.linalg.svd(m, full_matrices=False)
      expected = (u * np.minimum(s, max_norm)) @ vt
    else:
      expected = m * min(1.0, max_norm / np.linalg.norm(m))
    tol = 16 * max(k.shape) * eps * (max_norm + np.linalg.norm(k))
    assert np.linalg.norm(np.asarray(history[0][i]["kernel"], np.float64) - expected, 2) <= tol
  # First and last layers and the biases move as plain Adam moves them (up to
  # the rounding of differently fused programs: a few eps of |p| + lr).
  first = optax.apply_updates(params, step)
  for i in range(4):
    for name in ("kernel", "bias") if i in (0, 3) else ("bias",):
      ref = np.asarray(first[i][name], np.float64)
      np.testing.assert_allclose(history[0][i][name], ref, rtol=0,
                                 atol=4 * eps * (np.abs(ref).max() + 5e-2))
  assert losses[-1] < losses[0]


def test_constraint_under_vmap():
  """A batch of networks: each projects independently, as a loop would."""
  nets = [_net(s, WIDTHS, np.float32, scale=2.0 + s) for s in range(3)]
  stacked = jax.tree.map(lambda *a: jnp.stack(a), *nets)
  x = jnp.asarray(np.random.default_rng(5).uniform(-1, 1, (16, 2)), jnp.float32)
  tx = optax.chain(optax.sgd(1e-2), relucomp.norm_constraint(max_norm=0.5))

  def run(params):
    state = tx.init(params)
    for _ in range(2):
      grads = jax.grad(_loss)(params, x, jnp.abs(x[:, :1]))
      updates, state = tx.update(grads, state, params)
      params = optax.apply_updates(params, updates)
    return params

  batched = jax.jit(jax.vmap(run))(stacked)
  run_one = jax.jit(run)
  for b, net in enumerate(nets):
    looped = run_one(net)
    for i in (1, 2):
      kernel = batched[i]["kernel"][b]
      assert _inside(kernel, 0.5, "spectral")
      # The same float32 operations, batched: SVDs of a batch agree with
      # one-at-a-time ones to a few ulp of the kernel's norm (0.5).
      np.testing.assert_allclose(kernel, looped[i]["kernel"], atol=1e-5)


@pytest.mark.parametrize("norm", ["spectral", "frobenius"])
def test_network_inside_is_left_unchanged(dtype, norm):
  params = _net(3, WIDTHS, dtype)
  for layer in params[1:-1]:       # scale every hidden kernel to norm 0.5
    layer["kernel"] = layer["kernel"] * (0.5 / _norm(layer["kernel"], norm))
  tx = relucomp.norm_constraint(max_norm=1.0, norm=norm)
  zeros = jax.tree.map(jnp.zeros_like, params)
  updates, _ = tx.update(zeros, tx.init(params), params)
  after = optax.apply_updates(params, updates)
  for a, b in zip(jax.tree.leaves(after), jax.tree.leaves(params)):
    np.testing.assert_array_equal(a, b)
  # Small steps that stay inside pass through bit for bit.
  grads = jax.tree.map(lambda p: 1e-3 * jnp.ones_like(p), params)
  inner = optax.sgd(1.0)
  chained = optax.chain(inner, tx)
  ref, _ = inner.update(grads, inner.init(params), params)
  got, _ = chained.update(grads, chained.init(params), params)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(ref)):
    np.testing.assert_array_equal(a, b)


def test_nnx_sequential_of_linear(x64):
  layers = []
  for i, (a, b) in enumerate(zip(WIDTHS[:-1], WIDTHS[1:])):
    layers += [nnx.Linear(a, b, rngs=nnx.Rngs(i), param_dtype=jnp.float64), nnx.relu]
  model = nnx.Sequential(*layers[:-1])
  for layer in model.layers[::2]:
    layer.kernel[...] = 4.0 * layer.kernel[...]
  optimizer = nnx.Optimizer(
      model, optax.chain(optax.adam(1e-2), relucomp.norm_constraint(max_norm=1.0)),
      wrt=nnx.Param)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(16, 2)))

  @nnx.jit
  def step(model, optimizer):
    grads = nnx.grad(lambda m: jnp.mean((m(x)[:, 0] - x[:, 0] * x[:, 1]) ** 2))(model)
    optimizer.update(model, grads)

  first_before = np.asarray(model.layers[0].kernel[...])
  for _ in range(3):
    step(model, optimizer)
    kernels = [layer.kernel[...] for layer in model.layers[::2]]
    assert all(_inside(k, 1.0, "spectral") for k in kernels[1:-1])
  assert _norm(kernels[0], "spectral") > 1.5 and _norm(kernels[-1], "spectral") > 1.5
  assert not np.array_equal(first_before, kernels[0])
  # The params state itself (nnx.state) goes through update as well.
  state = nnx.state(model, nnx.Param)
  tx = relucomp.norm_constraint(max_norm=0.5, norm="frobenius")
  updates, _ = tx.update(jax.tree.map(jnp.zeros_like, state), tx.init(state), state)
  projected = optax.apply_updates(state, updates)
  assert _inside(projected["layers"][2]["kernel"], 0.5, "frobenius")
  assert _inside(projected["layers"][4]["kernel"], 0.5, "frobenius")


def test_compositional_dense_blocks(x64):
  """The written-out hidden kernels of the layer obey the bound, and so does its
  Lipschitz bound: ||first||_2 max_norm^depth ||last||_2. Gradients are random
  (no forward pass to compile): what is tested is the projection."""
  depth, max_norm, norm = 3, 0.7, "spectral"
  layer = relucomp.CompositionalDense(2, 1, depth=depth, units=3, rngs=nnx.Rngs(0),
                                      stage="free", param_dtype=jnp.float64)
  model = nnx.Sequential(layer)
  optimizer = nnx.Optimizer(
      model, optax.chain(optax.sgd(0.5), relucomp.norm_constraint(max_norm=max_norm,
                                                                   norm=norm)),
      wrt=nnx.Param)
  rng = np.random.default_rng(1)
  before = [np.asarray(layer.projection_kernel[...]), np.asarray(layer.combine_kernel[...])]
  for _ in range(2):
    grads = jax.tree.map(lambda a: jnp.asarray(rng.normal(size=a.shape)),
                         nnx.state(model, nnx.Param))
    optimizer.update(model, grads)
    mlp = relucomp.layer_to_mlp(layer)
    assert len(mlp) == depth + 2
    for p in mlp[1:-1]:
      assert _inside(p["kernel"], max_norm, "spectral")
    blocks = np.asarray(layer.hidden_kernel[...])
    assert all(_inside(b, max_norm, norm) for b in blocks.reshape(-1, 4, 4))
    bound = float(relucomp.lipschitz_bound(mlp))
    ends = _norm(mlp[0]["kernel"], "spectral") * _norm(mlp[-1]["kernel"], "spectral")
    assert bound <= ends * max_norm ** depth * (1 + 1e-12)
  # The layer's own ends are free.
  assert not np.array_equal(before[0], layer.projection_kernel[...])
  assert not np.array_equal(before[1], layer.combine_kernel[...])
  # Frobenius: each block's own Frobenius norm (first-layer blocks [f; -f]
  # have Frobenius norm sqrt(2) |f|).
  state = nnx.state(model, nnx.Param)
  tx = relucomp.norm_constraint(max_norm=0.3, norm="frobenius")
  updates, _ = tx.update(jax.tree.map(jnp.zeros_like, state), tx.init(state), state)
  projected = optax.apply_updates(state, updates)["layers"][0]
  blocks = np.asarray(projected["hidden_kernel"]).reshape(-1, 4, 4)
  assert all(_inside(b, 0.3, "frobenius") for b in blocks)
  assert max(_norm(b, "frobenius") for b in blocks) > 0.29   # projected onto, not inside
  first = np.asarray(projected["first_kernel"]).reshape(-1, 8)
  assert np.all(np.sqrt(2) * np.linalg.norm(first, axis=1) <= 0.3 * (1 + 8 * EPS64))


def test_sixteen_bit_kernels():
  params = _net(4, WIDTHS, jnp.bfloat16)
  tx = relucomp.norm_constraint(max_norm=1.0)
  updates, _ = tx.update(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
  after = optax.apply_updates(params, updates)
  assert after[1]["kernel"].dtype == jnp.bfloat16
  assert _inside(after[1]["kernel"], 1.0, "spectral")


def test_bad_arguments():
  for bad in (0, -1.0, float("nan"), float("inf"), "1", None, True, [1.0]):
    with pytest.raises(ValueError, match="max_norm"):
      relucomp.norm_constraint(max_norm=bad)
  for bad in ("l1", "Spectral", None, 2):
    with pytest.raises(ValueError, match="norm must be one of"):
      relucomp.norm_constraint(norm=bad)
  params = _net(0, WIDTHS, np.float32)
  tx = relucomp.norm_constraint()
  with pytest.raises(ValueError, match="needs the params"):
    tx.update(params, tx.init(params))
  with pytest.raises(ValueError, match="structure of params"):
    tx.update(params[:2], tx.init(params), params)


def test_empty_hidden_layer_passes_through():
  params = [{"kernel": jnp.ones((2, 3)), "bias": jnp.zeros(3)},
            {"kernel": jnp.ones((3, 0)), "bias": jnp.zeros(0)},
            {"kernel": jnp.ones((0, 1)), "bias": jnp.zeros(1)}]
  tx = relucomp.norm_constraint()
  grads = jax.tree.map(jnp.ones_like, params)
  updates, _ = tx.update(grads, tx.init(params), params)
  for a, b in zip(jax.tree.leaves(updates), jax.tree.leaves(grads)):
    np.testing.assert_array_equal(a, b)
