"""Norm constraints on the hidden kernels: depth-independent Lipschitz bounds.

Heinecke and Hwang (Theorem 6) bound the Lipschitz constant of an ``L``-layer
ReLU network by products over its weight matrices; the bound stays flat in
the depth when every hidden matrix has spectral norm at most 1. Then

    ||f(x) - f(y)||_2 <= ||W_1||_2 max_norm^(L-2) ||W_L||_2 ||x - y||_2

whatever ``L`` is. :func:`norm_constraint` keeps that condition through
training: it is an optax transformation that turns any optimiser's step into
the step to the nearest network (in the Frobenius distance of each kernel)
that satisfies it.

Which kernels are hidden. Theorem 6 leaves the first and last layers free
(their norms are the two factors outside the power), so:

* this library's params (a sequence of ``{"kernel", "bias"}`` layers) and
  any other pytree of 2-D leaves named ``kernel`` (an ``nnx.Sequential`` or
  ``nnx.List`` of ``nnx.Linear``: ``nnx.state(model, nnx.Param)``): every
  ``kernel`` but the first and the last, in the order the pytree flattens
  (list order; numeric for ``nnx.Sequential``; sorted attribute names for
  other modules: name their layers so that this order is the network's);
* :class:`CompositionalDense` (free stage): the kernels of the plain MLP it
  computes (:func:`layer_to_mlp`) between its first layer (the projection)
  and its last (the output and combination weights). Those are
  block-diagonal: the ``2 x 8`` blocks ``[f_j; -f_j]`` of ``first_kernel``
  (norm ``sqrt(2) ||f_j||_2``; rank one, so spectral and Frobenius norms
  agree) and the ``4 x 4`` blocks of ``hidden_kernel``. A block-diagonal
  matrix's spectral norm is its largest block's, so constraining every
  block constrains the written-out kernel exactly. With
  ``norm="frobenius"`` each block's Frobenius norm is constrained (a
  sufficient condition for the spectral norm; the written-out kernel's
  Frobenius norm is up to ``sqrt(blocks)`` times larger). Stage-1
  parameters (peaks, amplitudes) are not kernels and pass through; so do
  the layer's projection, output and combination weights, even when the
  layer sits inside a larger model.

Everything else (biases, first and last kernels) passes through unchanged.
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = ["norm_constraint"]

_NORMS = ("spectral", "frobenius")

# Leaf names of CompositionalDense's interior kernels (see the module notes).
_CD_FIRST = "first_kernel"
_CD_HIDDEN = "hidden_kernel"


class _Kind(NamedTuple):
  """How one leaf is constrained: ``"matrix"``, ``"blocks"``, ``"rows"``."""
  kind: str
  scale: float = 1.0       # the constrained norm is ``scale *`` the computed one


def _leaf_name(path: tuple[Any, ...]) -> str | None:
  """The last string key of a pytree path (skipping nnx's ``.value``)."""
  for entry in reversed(path):
    name = getattr(entry, "key", getattr(entry, "name", None))
    if isinstance(name, str) and name != "value":
      return name
  return None


def _kinds(paths_and_leaves: list[tuple[Any, Any]]) -> list[_Kind | None]:
  """Which leaves are hidden kernels, and of what shape of matrix."""
  names = [_leaf_name(path) for path, _ in paths_and_leaves]
  dense = [i for i, (name, (_, leaf)) in enumerate(zip(names, paths_and_leaves))
           if name == "kernel" and jnp.ndim(leaf) == 2]
  hidden_dense = set(dense[1:-1])
  kinds: list[_Kind | None] = []
  for i, (name, (_, leaf)) in enumerate(zip(names, paths_and_leaves)):
    if i in hidden_dense:
      kinds.append(_Kind("matrix"))
    elif name == _CD_HIDDEN and jnp.ndim(leaf) == 4:
      kinds.append(_Kind("blocks"))
    elif name == _CD_FIRST and jnp.ndim(leaf) == 3:
      kinds.append(_Kind("rows", math.sqrt(2.0)))    # block [f; -f] of norm sqrt(2) |f|
    else:
      kinds.append(None)
  return kinds


def _compute_dtype(dtype: Any) -> Any:
  """LAPACK has no 16-bit SVD: compute those in float32."""
  return jnp.promote_types(dtype, jnp.float32)


def _targets(kernel: jax.Array, n: int, max_norm: float, dtype: Any):
  """Thresholds that survive rounding (error estimate in :func:`norm_constraint`).

  Returns ``(pass_below, target)``: a computed norm at most ``pass_below``
  is kept; larger ones are projected to radius ``target``.
  """
  eps = float(jnp.finfo(dtype).eps)
  pass_below = max_norm * (1.0 - 4.0 * n * eps)
  size = jnp.sqrt(jnp.sum(jnp.square(kernel), axis=(-2, -1)))
  target = max_norm * (1.0 - 8.0 * n * eps) - 3.0 * eps * size
  return pass_below, jnp.maximum(target, 0.5 * max_norm)


# Jitted so that an eager update compiles once per kernel shape, not per operation.
@functools.partial(jax.jit, static_argnames=("kind", "max_norm", "norm"))
def _project(kernel: jax.Array, update: jax.Array, kind: _Kind, max_norm: float,
             norm: str) -> jax.Array:
  """The update that moves ``kernel`` to the projection of ``kernel + update``."""
  if kernel.size == 0:                             # an empty layer has norm 0
    return update
  dtype = kernel.dtype
  work = _compute_dtype(dtype)
  new = (kernel + update).astype(dtype)           # what optax.apply_updates makes
  k, m = kernel.astype(work), new.astype(work)
  if kind.kind == "rows":                          # (U, 2, 4): one vector per unit
    k = k.reshape(k.shape[:-2] + (1, -1))
    m = m.reshape(m.shape[:-2] + (1, -1))
  radius = max_norm / kind.scale
  n = max(m.shape[-2:])
  pass_below, target = _targets(k, n, radius, dtype)
  if norm == "spectral" and kind.kind != "rows":
    u, s, vt = jnp.linalg.svd(m, full_matrices=False)
    current = s[..., 0] if s.shape[-1] else jnp.zeros(m.shape[:-2], work)
    clipped = jnp.minimum(s, target[..., None])
    projected = (u * clipped[..., None, :]) @ vt
  else:                                            # Frobenius (= spectral for rank one)
    current = jnp.sqrt(jnp.sum(jnp.square(m), axis=(-2, -1)))
    factor = jnp.where(current > 0, target / jnp.where(current > 0, current, 1), 1)
    projected = m * factor[..., None, None]
  keep = (current <= pass_below)[..., None, None]
  out = jnp.where(keep, m, projected).reshape(new.shape).astype(dtype)
  # Kept kernels: the update as it was, so apply_updates gives ``new`` bit for
  # bit. ``keep`` is (..., 1, 1): it broadcasts over each matrix (and, for
  # "rows", over the unit's (2, 4) weights).
  step = (out.astype(work) - kernel.astype(work)).astype(update.dtype)
  return jnp.where(keep, update, step)


def _check_max_norm(max_norm: Any) -> float:
  """A Python float from a real scalar (a number or a 0-d real array)."""
  real = (isinstance(max_norm, numbers.Real)
          or (np.ndim(max_norm) == 0 and hasattr(max_norm, "dtype")
              and np.dtype(max_norm.dtype).kind in "fiu"))
  if isinstance(max_norm, (bool, np.bool_)) or not real:
    raise ValueError(f"max_norm must be a finite number > 0; got {max_norm!r}.")
  value = float(max_norm)
  if not (math.isfinite(value) and value > 0):
    raise ValueError(f"max_norm must be a finite number > 0; got {max_norm!r}.")
  return value


def norm_constraint(*, max_norm: float = 1.0,
                    norm: str = "spectral") -> optax.GradientTransformation:
  """An optax transformation that keeps every hidden kernel's norm <= ``max_norm``.

  Chain it after any optimiser: ``optax.chain(optax.adam(1e-3),
  norm_constraint())``. For each hidden kernel ``K`` (which kernels are
  hidden: see the module notes; first and last layers are left free) it
  replaces the update ``U`` by ``P - K``, where ``P`` is the projection of
  ``K + U`` onto ``{M : ||M|| <= max_norm}`` in the Frobenius distance, so
  ``optax.apply_updates`` lands on ``P``. Then the network's global
  Lipschitz bound (:func:`lipschitz_bound`) is at most ``||W_1||_2
  max_norm^(L-2) ||W_L||_2`` for ``L`` layers, at every depth.

  * ``norm="spectral"``: ``P = U_M min(S, max_norm) V_M^T`` from the SVD
    ``M = U_M S V_M^T``: the exact projection onto the spectral-norm ball
    (clipping singular values is the nearest point of that ball). An SVD
    is used, not a power iteration: a power iteration converges to the
    largest singular value from below, so a kernel clipped by its estimate
    can stay above ``max_norm``, and the convergence rate depends on the
    gap between the two largest singular values, which no step count
    guarantees. The price is one SVD per hidden kernel and step: with 10
    hidden layers of width 16 or 64 and 256 points in float64, a
    constrained Adam step took 3 to 3.5 times a plain one on 2 busy CPU
    cores (with ``OPENBLAS_NUM_THREADS=1``: on a loaded machine OpenBLAS's
    own threads made the 64-wide SVDs 30 times slower).
  * ``norm="frobenius"``: ``P = M min(1, max_norm / ||M||_F)``, the exact
    Frobenius projection; it also bounds the spectral norm.

  Kernels already inside the ball are kept bit for bit: their updates pass
  through unchanged. Rounding: a kernel whose computed norm is at most
  ``max_norm (1 - 4 n eps)`` (``n`` its larger dimension, ``eps`` the
  dtype's machine epsilon) is kept; larger ones are projected to radius
  ``max_norm (1 - 8 n eps) - 3 eps ||K||_F``, which absorbs the error of the
  SVD (about ``n eps`` relative) and of the addition in
  ``optax.apply_updates`` (about ``2 eps (||K||_F + ||P||_F)``), so the
  result's exact norm is at most ``max_norm``. The radius never goes below
  ``max_norm / 2``, so for a kernel larger than about
  ``max_norm / (6 eps)`` before the step (float32: ``1.4e6 max_norm``) the
  first step's addition can leave it slightly above. 16-bit kernels are
  projected in float32 with the margin of their own ``eps``, which is
  large: a 6-wide bfloat16 kernel lands at 0.5 to 0.6 ``max_norm``.

  Pure jnp: works under ``jax.jit`` and ``jax.vmap`` (batched kernels
  project independently), in float32 and float64, and with
  ``nnx.Optimizer`` (which passes the params).

  Args:
    max_norm: the bound, a finite number > 0.
    norm: ``"spectral"`` (default) or ``"frobenius"``.

  Returns:
    An ``optax.GradientTransformation`` with an empty state whose
    ``update(updates, state, params)`` needs ``params``.

  Raises:
    ValueError: on a ``max_norm`` that is not a finite number > 0, an
      unknown ``norm``, or (when updating) ``params=None`` or updates
      whose structure differs from the params'.

  Example:
    >>> import jax, jax.numpy as jnp, optax
    >>> import relucomp
    >>> keys = jax.random.split(jax.random.key(0), 4)
    >>> params = [{"kernel": 2 * jax.random.normal(k, (3, 3)), "bias": jnp.zeros(3)}
    ...           for k in keys]
    >>> tx = optax.chain(optax.adam(1e-2), relucomp.norm_constraint(max_norm=1.0))
    >>> state = tx.init(params)
    >>> grads = jax.tree.map(jnp.ones_like, params)
    >>> updates, state = tx.update(grads, state, params)
    >>> params = optax.apply_updates(params, updates)
    >>> [round(float(jnp.linalg.norm(p["kernel"], 2)), 4) for p in params[1:-1]]
    [1.0, 1.0]
  """
  max_norm = _check_max_norm(max_norm)
  if norm not in _NORMS:
    raise ValueError(f"norm must be one of {_NORMS}; got {norm!r}.")

  def init_fn(params: Any) -> optax.EmptyState:
    del params
    return optax.EmptyState()

  def update_fn(updates: Any, state: optax.EmptyState, params: Any = None):
    if params is None:
      raise ValueError("norm_constraint needs the params: call "
                       "update(updates, state, params).")
    flat, treedef = jax.tree_util.tree_flatten_with_path(params)
    try:
      flat_updates = treedef.flatten_up_to(updates)
    except (TypeError, ValueError) as err:
      raise ValueError(f"updates must have the structure of params: {err}") from None
    kinds = _kinds(flat)
    new = [update if kind is None else _project(jnp.asarray(leaf), jnp.asarray(update),
                                                 kind=kind, max_norm=max_norm, norm=norm)
           for (_, leaf), update, kind in zip(flat, flat_updates, kinds)]
    return jax.tree_util.tree_unflatten(treedef, new), state

  return optax.GradientTransformation(init_fn, update_fn)
