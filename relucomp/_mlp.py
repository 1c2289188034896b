"""Plain ReLU MLPs as pytrees: a sequence of ``{"kernel", "bias"}`` layers."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from relucomp import _validation as v

__all__ = ["mlp_apply", "check_params", "count_params", "balance_neurons"]

Params = Sequence[Mapping[str, jax.Array]]


def check_params(params: Any, name: str = "params") -> list[tuple[int, int]]:
  """Checks the layer shapes of an MLP and returns ``(n_in, n_out)`` per layer.

  Raises:
    ValueError: if ``params`` is not a non-empty sequence of dicts with a
      2-D ``"kernel"`` of shape ``(n_in, n_out)`` and a ``"bias"`` of shape
      ``(n_out,)``, or if consecutive layers do not chain.
  """
  if isinstance(params, Mapping) or not isinstance(params, Sequence) or not params:
    raise ValueError(
        f"{name} must be a non-empty list of layers, each a dict with "
        f"'kernel' (n_in, n_out) and 'bias' (n_out,); got {type(params).__name__}.")
  shapes = []
  for i, layer in enumerate(params):
    if not isinstance(layer, Mapping) or "kernel" not in layer or "bias" not in layer:
      raise ValueError(f"{name}[{i}] must be a dict with keys 'kernel' and 'bias'.")
    k_shape = jnp.shape(layer["kernel"])
    b_shape = jnp.shape(layer["bias"])
    if len(k_shape) != 2:
      raise ValueError(
          f"{name}[{i}]['kernel'] must be 2-D (n_in, n_out); got shape {k_shape}.")
    if b_shape != (k_shape[1],):
      raise ValueError(
          f"{name}[{i}]['bias'] must have shape (n_out,) = ({k_shape[1]},) to "
          f"match its kernel {k_shape}; got {b_shape}.")
    if shapes and shapes[-1][1] != k_shape[0]:
      raise ValueError(
          f"{name}[{i}]['kernel'] has n_in = {k_shape[0]} but layer {i - 1} has "
          f"n_out = {shapes[-1][1]}; consecutive layers must chain.")
    shapes.append((int(k_shape[0]), int(k_shape[1])))
  return shapes


def count_params(params: Params) -> int:
  """The number of weights and biases in an MLP.

  Example:
    >>> import relucomp
    >>> relucomp.count_params(relucomp.compositional_mlp([0.5, 0.5], [0.25, 0.0625]))
    33
  """
  shapes = check_params(params)
  return sum(n_in * n_out + n_out for n_in, n_out in shapes)


def mlp_apply(params: Params, x: ArrayLike) -> jax.Array:
  """Forward pass of a plain ReLU MLP.

  Every layer but the last is ``relu(h @ kernel + bias)``; the last is
  linear. This is the layout and naming of ``flax`` dense layers, so params
  move between relucomp and flax models unchanged.

  Args:
    params: list of layers, each ``{"kernel": (n_in, n_out), "bias":
      (n_out,)}``, consecutive shapes chaining.
    x: inputs of shape ``(..., n_in)``.

  Returns:
    Outputs of shape ``(..., n_out)`` of the last layer.

  Raises:
    ValueError: on a malformed layer, layers that do not chain, ``x``
      whose last axis is not ``n_in`` of the first layer, or finite weights
      and inputs whose outputs overflow the dtype (checked when the values
      are concrete; NaN or inf inputs give NaN or inf outputs).

  Example:
    >>> import jax.numpy as jnp
    >>> import relucomp
    >>> params = [{"kernel": jnp.array([[1.0, -1.0]]), "bias": jnp.zeros(2)},
    ...           {"kernel": jnp.array([[1.0], [1.0]]), "bias": jnp.zeros(1)}]
    >>> print(relucomp.mlp_apply(params, jnp.array([[-2.0], [3.0]]))[:, 0])  # |x|
    [2. 3.]
  """
  shapes = check_params(params)
  x = v.array(x, "x")
  if x.ndim < 1 or x.shape[-1] != shapes[0][0]:
    raise ValueError(
        f"x must have shape (..., n_in) with n_in = {shapes[0][0]} (the first "
        f"kernel's rows); got shape {x.shape}.")
  dtype = v.float_dtype(x, *[layer["kernel"] for layer in params])
  layers = [(jnp.asarray(layer["kernel"], dtype), jnp.asarray(layer["bias"], dtype))
            for layer in params]
  out = forward(layers, x.astype(dtype))
  # Finite weights and inputs must give finite outputs (NaN in, NaN out is
  # left to the caller: a diverged fit's network still evaluates).
  host = [v.concrete(a) for a in [x] + [a for layer in layers for a in layer]]
  if all(a is not None for a in host) and all(np.isfinite(a).all() for a in host):
    v.check_output(out, "params and x", dtype)
  return out


@jax.jit
def forward(layers: list[tuple[jax.Array, jax.Array]], x: jax.Array) -> jax.Array:
  """Unchecked forward pass over ``(kernel, bias)`` pairs of one dtype."""
  h = x
  for kernel, bias in layers[:-1]:
    h = jax.nn.relu(h @ kernel + bias)
  kernel, bias = layers[-1]
  return h @ kernel + bias


def balance_neurons(params: Params) -> list[dict[str, jax.Array]]:
  """Rescales every hidden neuron towards equal incoming and outgoing weights.

  A ReLU network computes the same function when a hidden neuron's incoming
  weights and bias are multiplied by ``alpha > 0`` and its outgoing weights
  divided by ``alpha``. This picks, for each hidden neuron, the ``alpha``
  that makes the squared norm of its incoming weights and bias equal to that
  of its outgoing weights, ``alpha = (out / in) ** (1/4)``, all neurons at
  once from the norms of the given network (one pass; a neuron with no
  incoming or no outgoing weight keeps ``alpha = 1``). The function is
  unchanged up to rounding; what changes is how gradient steps act on it:
  :func:`relucomp.fit` hands a balanced network to its second stage, whose
  Adam steps otherwise move the constant-carrying neurons of the
  construction far more than the wave neurons.

  Args:
    params: a plain MLP, list of ``{"kernel": (n_in, n_out), "bias":
      (n_out,)}`` layers.

  Returns:
    A new list of layers of the same shapes and dtype (the input is not
    modified).

  Raises:
    ValueError: on a malformed layer, layers that do not chain, or a NaN or
      inf weight (checked when the values are concrete).

  Example:
    >>> import jax.numpy as jnp
    >>> import relucomp
    >>> params = relucomp.compositional_mlp(jnp.array([0.3, 0.6, 0.5]),
    ...                                     jnp.array([0.2, 0.05]))
    >>> balanced = relucomp.balance_neurons(params)
    >>> x = jnp.linspace(0, 1, 9)[:, None]
    >>> bool(jnp.allclose(relucomp.mlp_apply(balanced, x), relucomp.mlp_apply(params, x),
    ...                   atol=1e-6))
    True
  """
  check_params(params)
  for i, layer in enumerate(params):
    v.check_finite(layer["kernel"], f"params[{i}]['kernel']")
    v.check_finite(layer["bias"], f"params[{i}]['bias']")
  dtype = v.float_dtype(*[layer["kernel"] for layer in params])
  layers = [{"kernel": jnp.asarray(layer["kernel"], dtype),
             "bias": jnp.asarray(layer["bias"], dtype)} for layer in params]
  return balanced(layers)


def _norm(x: jax.Array, axis: int) -> jax.Array:
  """Euclidean norms along ``axis``, scaled by the largest entry so that no
  square overflows or underflows (finite for finite ``x``)."""
  top = jnp.max(jnp.abs(x), axis=axis, keepdims=True, initial=0)
  safe = jnp.where(top > 0, top, 1)
  return jnp.squeeze(safe, axis) * jnp.sqrt(jnp.sum((x / safe) ** 2, axis=axis))


@jax.jit
def balanced(layers: list[dict[str, jax.Array]]) -> list[dict[str, jax.Array]]:
  """Unchecked :func:`balance_neurons` (traceable; used inside training)."""
  alphas = []
  for layer, nxt in zip(layers[:-1], layers[1:]):
    fan_in = _norm(jnp.concatenate([layer["kernel"], layer["bias"][None, :]]), axis=0)
    fan_out = _norm(nxt["kernel"], axis=1)
    # alpha = sqrt(|out| / |in|) from the norms (not their squares), as a
    # quotient of square roots: finite for every finite weight.
    alpha = jnp.sqrt(fan_out) / jnp.sqrt(fan_in)
    ok = (fan_in > 0) & (fan_out > 0) & jnp.isfinite(alpha) & (alpha > 0)
    alphas.append(jnp.where(ok, alpha, 1))
  out = []
  for k, layer in enumerate(layers):
    kernel, bias = layer["kernel"], layer["bias"]
    if k > 0:
      kernel = kernel / alphas[k - 1][:, None]
    if k < len(alphas):
      kernel, bias = kernel * alphas[k], bias * alphas[k]
    out.append({"kernel": kernel, "bias": bias})
  return out
