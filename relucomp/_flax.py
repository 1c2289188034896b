"""A flax nnx ReLU MLP as this library's params.

:func:`from_flax` reads an ``nnx.Sequential`` of ``nnx.Linear`` layers,
:class:`CompositionalDense` layers and ``nnx.relu`` (nested ``Sequential``
models included) and writes the plain MLP it computes: a list of
``{"kernel", "bias"}`` layers whose hidden layers are followed by a ReLU and
whose last layer is linear. Affine layers with no ReLU between them are
multiplied into one; a ReLU in front of the first layer or after the last
becomes an identity layer followed by the ReLU, so the result computes the
model's function exactly (up to the rounding of those products).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from relucomp import _layer

__all__ = ["from_flax"]

_RELUS = (nnx.relu, jax.nn.relu)
_ACCEPTED = ("from_flax reads a ReLU MLP: an nnx.Sequential of nnx.Linear, "
             "relucomp.CompositionalDense and nnx.relu (or one such layer)")


def _describe(item: Any) -> str:
  if isinstance(item, nnx.Module):
    kind = type(item)
    prefix = "nnx." if kind.__module__.startswith("flax.nnx") else ""
    return f"an {prefix}{kind.__qualname__} module"
  name = getattr(item, "__name__", None) or getattr(getattr(item, "fun", None), "__name__", None)
  if callable(item) and name == "relu":
    return ("a function named relu that is not nnx.relu or jax.nn.relu (a wrapped or "
            "custom relu; pass nnx.relu itself)")
  if callable(item):
    return f"the function {name or repr(item)}" + (" (an activation other than relu)"
                                                  if name else "")
  return f"a {type(item).__name__}"


def _items(model: Any, path: str) -> list[tuple[str, Any]]:
  """The model's layers in order, as ``(path, layer)``, nested Sequentials flattened."""
  if isinstance(model, nnx.Sequential):
    out = []
    for i, item in enumerate(model.layers):
      out.extend(_items(item, f"{path}.layers[{i}]"))
    return out
  if isinstance(model, (nnx.Linear, _layer.CompositionalDense)) or any(
      model is relu for relu in _RELUS):
    return [(path, model)]
  raise ValueError(f"{_ACCEPTED}; {path} is {_describe(model)}.")


def _finite(value: jax.Array, name: str) -> jax.Array:
  if not np.all(np.isfinite(np.asarray(value))):
    raise ValueError(f"{name} must be finite (no NaN or inf).")
  return value


def _affine(path: str, layer: Any) -> list[dict[str, jax.Array]]:
  """The plain MLP of one affine item (its last layer linear)."""
  if isinstance(layer, nnx.Linear):
    kernel = _finite(layer.kernel[...], f"{path}.kernel")
    if layer.bias is None:
      bias = jnp.zeros(kernel.shape[1], kernel.dtype)
    else:
      bias = _finite(layer.bias[...], f"{path}.bias")
    return [{"kernel": kernel, "bias": bias}]
  mlp = _layer.layer_to_mlp(layer)
  for i, part in enumerate(mlp):
    _finite(part["kernel"], f"{path} (its weights)")
    _finite(part["bias"], f"{path} (its weights)")
  return mlp


def _identity(n: int, dtype: Any) -> dict[str, jax.Array]:
  return {"kernel": jnp.eye(n, dtype=dtype), "bias": jnp.zeros(n, dtype)}


def from_flax(model: Any) -> list[dict[str, jax.Array]]:
  """The params of this library from a flax nnx ReLU MLP.

  ``model`` is an ``nnx.Sequential`` whose layers are ``nnx.Linear``,
  :class:`CompositionalDense` (written out by :func:`layer_to_mlp`),
  ``nnx.relu`` (or ``jax.nn.relu``) and nested ``nnx.Sequential`` models, or
  one ``nnx.Linear`` / :class:`CompositionalDense`. Consecutive affine
  layers without a ReLU between them are multiplied into one layer; a ReLU
  after a ReLU changes nothing; a ReLU before the first affine layer or
  after the last becomes an identity layer with that ReLU. The result
  computes ``model(x)`` (up to rounding), so every region tool of this
  library takes the model.

  Args:
    model: the flax model.

  Returns:
    A list of ``{"kernel": (n_in, n_out), "bias": (n_out,)}`` dicts in the
    format of :func:`mlp_apply`, in the model's parameter dtype.

  Raises:
    ValueError: for anything that is not a ReLU MLP, naming what was found
      and where (another activation such as ``gelu``, an ``nnx.Conv``, a
      custom module, ...); for layers whose sizes do not chain; for a model
      without an affine layer; for non-finite weights (naming the layer).

  Example:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> import relucomp
    >>> rngs = nnx.Rngs(0)
    >>> model = nnx.Sequential(nnx.Linear(5, 8, rngs=rngs), nnx.relu,
    ...                        nnx.Linear(8, 3, rngs=rngs))
    >>> params = relucomp.from_flax(model)
    >>> [layer["kernel"].shape for layer in params]
    [(5, 8), (8, 3)]
    >>> x = jax.random.normal(jax.random.key(1), (4, 5))
    >>> bool(jnp.allclose(relucomp.mlp_apply(params, x), model(x), atol=1e-6))
    True
    >>> relucomp.from_flax(nnx.Sequential(nnx.Linear(5, 8, rngs=rngs), nnx.gelu))
    Traceback (most recent call last):
    ...
    ValueError: from_flax reads a ReLU MLP: an nnx.Sequential of nnx.Linear, relucomp.CompositionalDense and nnx.relu (or one such layer); model.layers[1] is the function gelu (an activation other than relu).
  """
  out: list[dict[str, jax.Array]] = []
  linear_end = False          # out's last layer is not yet followed by a ReLU
  relu_first = False
  for path, item in _items(model, "model"):
    if any(item is relu for relu in _RELUS):
      if not out:
        relu_first = True
      linear_end = False
      continue
    mlp = _affine(path, item)
    n_in = mlp[0]["kernel"].shape[0]
    if not out:
      out = ([_identity(n_in, mlp[0]["kernel"].dtype)] if relu_first else []) + mlp
    else:
      n_prev = out[-1]["kernel"].shape[1]
      if n_in != n_prev:
        raise ValueError(f"{path} takes {n_in} inputs but the layers before it give "
                         f"{n_prev} outputs; the model's layers must chain.")
      out = (out[:-1] + _layer.compose_mlps(out[-1:], mlp)) if linear_end else out + mlp
    linear_end = True
  if not out:
    raise ValueError(f"{_ACCEPTED}; model has no nnx.Linear or CompositionalDense layer.")
  if not linear_end:
    n = out[-1]["kernel"].shape[1]
    out.append(_identity(n, out[-1]["kernel"].dtype))
  return out
