"""Plain ReLU MLPs as pytrees: a sequence of ``{"kernel", "bias"}`` layers."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from relucomp import _validation as v

__all__ = ["mlp_apply", "check_params", "count_params"]

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
    ValueError: on a malformed layer, layers that do not chain, or ``x``
      whose last axis is not ``n_in`` of the first layer.

  Example:
    >>> import jax.numpy as jnp
    >>> import relucomp
    >>> params = [{"kernel": jnp.array([[1.0, -1.0]]), "bias": jnp.zeros(2)},
    ...           {"kernel": jnp.array([[1.0], [1.0]]), "bias": jnp.zeros(1)}]
    >>> print(relucomp.mlp_apply(params, jnp.array([[-2.0], [3.0]]))[:, 0])  # |x|
    [2. 3.]
  """
  shapes = check_params(params)
  x = jnp.asarray(x)
  if x.ndim < 1 or x.shape[-1] != shapes[0][0]:
    raise ValueError(
        f"x must have shape (..., n_in) with n_in = {shapes[0][0]} (the first "
        f"kernel's rows); got shape {x.shape}.")
  dtype = v.float_dtype(x, *[layer["kernel"] for layer in params])
  h = x.astype(dtype)
  last = len(params) - 1
  for i, layer in enumerate(params):
    h = h @ jnp.asarray(layer["kernel"], dtype) + jnp.asarray(layer["bias"], dtype)
    if i < last:
      h = jax.nn.relu(h)
  return h
