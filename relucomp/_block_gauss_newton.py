"""Block Gauss-Newton steps for networks of independent subnetworks, as an optax transformation.

The hidden weights of :class:`relucomp.CompositionalDense` are block-diagonal:
every unit is a small subnetwork (its projection and two 4-wide compositional
networks) that no other unit's weights enter. A full Gauss-Newton step on
such a network needs the ``P x P`` matrix ``J^T J`` (``P`` about 1,500 for
the default two-layer network of :func:`relucomp.fit`), but the blocks of
one unit are small (about 190 parameters), so a damped solve per block is
cheap. Solving the blocks independently ignores how they interact, and the
sum of the block steps overshoots; one more small least-squares problem
fixes that: the step is the best combination of the block steps (and of
the previous step), with one coefficient each, under the same linearised
residuals. Every step is accepted only if it lowers the sum of squared
residuals, with Levenberg-Marquardt damping.

optax has no such transformation; it is written here in optax's interface
(like :func:`relucomp.levenberg_marquardt`), with the residual function as
the extra argument ``residual_fn``.

Its solves are LAPACK's (``jnp.linalg.solve``): the blocks grow with the
number of inputs. On the CPU, jax 0.10's batched LAPACK solves wait on the
thread pool they run on, so two programs that take these steps should not
run at the same time in two Python threads (they can hang); one program at
a time, or processes, are safe. The one-input fits use the solver of
``_linalg`` instead, which has no such wait.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from relucomp import _levenberg

__all__ = ["BatchResidualTransformation", "BlockGaussNewtonState", "block_gauss_newton",
           "parameter_blocks"]

#: Parameter names of :class:`relucomp.CompositionalDense` and the axis of
#: each that indexes the unit (``hidden_*`` index the ``2 U`` subnetworks).
_UNIT_AXIS = {"projection_kernel": -1, "projection_bias": 0, "peak_logits": 0,
              "amplitude_logits": 0, "slope": 0, "first_kernel": 0, "first_bias": 0,
              "output_kernel": 0, "output_bias": 0, "hidden_kernel": 1, "hidden_bias": 1}
#: Parameter names of the combination, one block per output.
_COMBINE = ("combine_kernel", "combine_bias")


def _key_name(entry: Any) -> Any:
  for attr in ("key", "name", "idx"):
    if hasattr(entry, attr):
      return getattr(entry, attr)
  return str(entry)


def _leaf_labels(name: Any, shape: tuple[int, ...], layer_kind: str) -> np.ndarray:
  """Local block labels of one leaf (``-1``: the whole leaf's group is one block)."""
  if layer_kind == "compositional" and name in _UNIT_AXIS:
    axis = _UNIT_AXIS[name] % len(shape)
    index = np.arange(shape[axis]) // (2 if name.startswith("hidden") else 1)
    return np.broadcast_to(index.reshape([-1 if a == axis else 1
                                          for a in range(len(shape))]), shape)
  if layer_kind == "compositional" and name in _COMBINE:
    # one block per output, after the units' labels (offset added by the caller)
    return np.broadcast_to(np.arange(shape[-1]), shape) + (1 << 20)
  if layer_kind == "columns":
    return np.broadcast_to(np.arange(shape[-1]), shape)
  return np.zeros(shape, np.int64)


def parameter_blocks(params: Any) -> Any:
  """The default blocks of :func:`block_gauss_newton`: one integer label per parameter.

  The leaves are grouped by the module (path without its last key) they
  belong to. In a :class:`relucomp.CompositionalDense` (a group holding
  ``projection_kernel`` and ``combine_kernel``, in either stage) every unit
  is one block (its projection, both compositional networks) and every
  output of the combination is one block (its column of ``combine_kernel``
  and its bias). In any other group whose leaves all have the same last
  axis (such as an ``nnx.Linear`` or a ``{"kernel", "bias"}`` layer), every
  output neuron is one block; otherwise the group is one block. Only the
  tree's paths and shapes are used, so this works on traced values.

  Args:
    params: a pytree of arrays (an ``nnx.State``, a dict, a list of layers).

  Returns:
    A pytree of the structure of ``params`` whose leaves are NumPy ``int``
    arrays of the leaves' shapes, with labels ``0 .. B - 1``.

  Example:
    >>> import numpy as np
    >>> from flax import nnx
    >>> import relucomp
    >>> layer = relucomp.CompositionalDense(2, 1, depth=2, units=3, rngs=nnx.Rngs(0))
    >>> labels = relucomp.parameter_blocks(nnx.state(layer, nnx.Param))
    >>> print(labels["projection_kernel"][...])    # an nnx.Param holding the labels
    [[0 1 2]
     [0 1 2]]
    >>> print(labels["combine_kernel"][...].ravel(), labels["combine_bias"][...])
    [3 3 3] [3]
  """
  leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
  groups: dict[tuple, list[int]] = {}
  names = []
  for i, (path, _) in enumerate(leaves):
    keys = [_key_name(k) for k in path if _key_name(k) not in ("value", "raw_value")]
    names.append(keys[-1] if keys else None)
    groups.setdefault(tuple(keys[:-1]), []).append(i)
  labels: list[Optional[np.ndarray]] = [None] * len(leaves)
  offset = 0
  for members in groups.values():
    member_names = {names[i] for i in members}
    shapes = [tuple(np.shape(leaves[i][1])) for i in members]
    if {"projection_kernel", "combine_kernel"} <= member_names:
      kind = "compositional"
    elif all(len(s) >= 1 for s in shapes) and len({s[-1] for s in shapes}) == 1:
      kind = "columns"
    else:
      kind = "whole"
    local = [_leaf_labels(names[i], s, kind) for i, s in zip(members, shapes)]
    present = np.unique(np.concatenate([a.ravel() for a in local] + [np.zeros(0, np.int64)]))
    remap = {int(v): offset + k for k, v in enumerate(present)}
    for i, a in zip(members, local):
      labels[i] = np.vectorize(remap.__getitem__, otypes=[np.int64])(a) if a.size else (
          np.zeros(a.shape, np.int64))
    offset += len(present)
  return jax.tree_util.tree_unflatten(treedef, labels)


class BatchResidualTransformation(_levenberg.ResidualTransformation):
  """A :class:`relucomp._levenberg.ResidualTransformation` that also takes ``batch``.

  Its ``update`` accepts ``residual_fn(params, batch)`` with ``batch`` (the
  examples along a leading axis), which the training loop of
  :func:`relucomp.fit` passes (the inputs and targets on the normalised
  scale); given ``residual_fn(params)`` alone it works as well, more slowly.
  """
  __slots__ = ()


class BlockGaussNewtonState(NamedTuple):
  """State of :func:`block_gauss_newton`.

  Attributes:
    damping: the current Levenberg-Marquardt ``lambda`` (scalar).
    accepted: how many steps were kept so far (int32 scalar).
    previous: the last kept update (flat, one entry per parameter), a
      direction of the next step's subspace.

  Example:
    >>> import jax.numpy as jnp, relucomp
    >>> state = relucomp.block_gauss_newton().init({"w": jnp.zeros(3)})
    >>> print(round(float(state.damping), 6), int(state.accepted), state.previous.shape)
    0.001 0 (3,)
  """
  damping: jax.Array
  accepted: jax.Array
  previous: jax.Array


def _block_index(labels: Any, size: int) -> tuple[np.ndarray, np.ndarray]:
  """``(B, pmax)`` flat indices of each block's parameters (``size`` pads) and validity."""
  flat = np.concatenate([np.ravel(a) for a in jax.tree.leaves(labels)] + [np.zeros(0, int)])
  if flat.shape != (size,):
    raise ValueError(f"blocks must give one label per parameter ({size}); got {flat.size}.")
  _, flat = np.unique(flat, return_inverse=True)
  counts = np.bincount(flat)
  order = np.argsort(flat, kind="stable")
  index = np.full((counts.size, counts.max()), size, np.int32)
  start = 0
  for b, c in enumerate(counts):
    index[b, :c] = order[start:start + c]
    start += c
  return index, index < size


def _jacobian(residual_fn: Callable, flat: jax.Array, unravel: Callable,
              batch: Any) -> tuple[jax.Array, jax.Array, Callable]:
  """Residuals ``r`` (flat), their Jacobian ``(len(r), P)`` and ``f -> r(f)``."""
  if batch is None:
    res = lambda f: jnp.ravel(residual_fn(unravel(f)))
    return res(flat), jax.jacfwd(res)(flat), res
  res = lambda f: jnp.ravel(residual_fn(unravel(f), batch))
  one = lambda f, ex: jnp.ravel(residual_fn(unravel(f), jax.tree.map(lambda a: a[None], ex)))
  jac = jax.vmap(jax.jacrev(one), in_axes=(None, 0))(flat, batch)    # (n, m, P)
  r = res(flat)
  return r, jac.reshape(r.shape[0], flat.shape[0]), res


def _step(jac: jax.Array, r: jax.Array, previous: jax.Array, lam: jax.Array,
          index: np.ndarray, valid: np.ndarray, momentum: bool) -> jax.Array:
  """The coupled block Gauss-Newton step ``delta`` (parameters move by ``-delta``)."""
  eps = jnp.finfo(jac.dtype).eps
  padded = jnp.concatenate([jac, jnp.zeros((jac.shape[0], 1), jac.dtype)], axis=1)
  jb = jnp.moveaxis(padded[:, index], 1, 0)                          # (B, n, pmax)
  gram = jnp.einsum("bni,bnj->bij", jb, jb)
  diag = jnp.diagonal(gram, axis1=1, axis2=2)
  scale = jnp.where(valid, diag + eps * jnp.max(diag), 1.0)
  eye = jnp.eye(index.shape[1], dtype=jac.dtype)
  steps = jnp.linalg.solve(gram + lam * scale[:, :, None] * eye,
                           jnp.einsum("bni,n->bi", jb, r)[..., None])[..., 0] * valid
  z = jnp.einsum("bni,bi->nb", jb, steps)                            # J_b delta_b
  if momentum:
    z = jnp.concatenate([z, (jac @ previous)[:, None]], axis=1)
  zz = z.T @ z
  zdiag = jnp.diagonal(zz)
  coef = jnp.linalg.solve(zz + jnp.diag(lam * (zdiag + eps * jnp.max(zdiag))), z.T @ r)
  size = jac.shape[1]
  delta = jnp.zeros(size + 1, jac.dtype).at[index.ravel()].add(
      (steps * coef[:index.shape[0], None]).ravel())[:size]
  if momentum:
    delta = delta + coef[-1] * previous
  return delta


def block_gauss_newton(*, blocks: Optional[Callable[[Any], Any]] = None,
                       damping: float = 1e-3, increase: float = 2.0,
                       decrease: float = 3.0, min_damping: float = 1e-7,
                       max_damping: float = 1e10,
                       momentum: bool = True) -> BatchResidualTransformation:
  """Block-diagonal Gauss-Newton steps with a coupled step length, as an optax transformation.

  Every ``update`` forms the Jacobian ``J`` of the residuals ``r`` and splits
  the parameters into blocks (``blocks(params)``, by default
  :func:`parameter_blocks`: one per unit of a
  :class:`relucomp.CompositionalDense`, one per output neuron of other
  layers). For every block ``b`` it solves the damped Gauss-Newton system
  of that block alone,
  ``(J_b^T J_b + lambda D_b) delta_b = J_b^T r`` (``D_b`` Marquardt's
  scaling ``diag(J_b^T J_b)`` plus ``eps`` times the largest diagonal
  entry). Then it takes the best combination of these block steps and of
  the previous kept update ``v`` under the linearised residuals: with
  ``Z = [J_1 delta_1, ..., J_B delta_B, J v]`` it solves
  ``(Z^T Z + lambda diag(Z^T Z)) c = Z^T r`` (a ``B + 1`` system) and
  proposes ``delta = sum_b c_b delta_b + c_v v``. The step is kept if the
  sum of squared residuals at ``params - delta`` is finite and lower; then
  ``lambda`` is divided by ``decrease`` (not below ``min_damping``),
  otherwise the parameters stay and ``lambda`` is multiplied by
  ``increase`` (not above ``max_damping``). The loss therefore never rises.

  Cost per step: the Jacobian (one row of ``P`` numbers per residual), the
  block systems (``sum_b n p_b^2`` for blocks of ``p_b`` parameters, not
  ``n P^2``) and two evaluations of the residuals.

  ``update(updates, state, params, *, residual_fn, batch=None)``; the
  gradient ``updates`` is not used:

  * with ``batch`` (a pytree of arrays whose leading axis indexes the
    examples), ``residual_fn(params, batch)`` returns the residuals of the
    examples along its leading axis, each depending on its own example
    only (a model applied to a batch, minus targets). The Jacobian is then
    taken one example at a time (``jax.vmap`` of ``jax.jacrev``), which
    costs about one backward pass of the batch;
  * without, ``residual_fn(params)`` returns any residual array and the
    Jacobian is taken in forward mode (``P`` forward passes), as by
    :func:`relucomp.levenberg_marquardt`: fine for a few hundred
    parameters.

  Args:
    blocks: ``None`` for :func:`parameter_blocks`, or a function of the
      params pytree returning a pytree of the same structure with one
      integer label per parameter (NumPy arrays: they are used while
      tracing, from shapes and paths only).
    damping: starting ``lambda``, ``> 0``.
    increase: factor applied to ``lambda`` after a rejected step, ``> 1``.
    decrease: divisor applied to ``lambda`` after a kept step, ``> 1``.
    min_damping: lower bound of ``lambda``, ``> 0`` and ``<= damping``.
    max_damping: upper bound of ``lambda``, ``>= damping``.
    momentum: include the previous kept update in the combination.

  Returns:
    A :class:`BatchResidualTransformation` (an
    ``optax.GradientTransformationExtraArgs``); :func:`relucomp.fit` hands
    it ``residual_fn`` and ``batch`` (pass it as a stage's optimiser, e.g.
    ``optimizer=(None, relucomp.block_gauss_newton())``).

  Raises:
    ValueError: for a factor out of its range, a ``blocks`` that is not
      callable or a ``momentum`` that is not a bool; from ``update``,
      without ``params`` or ``residual_fn``, or when ``blocks`` does not
      label every parameter.

  Example:
    >>> import jax, jax.numpy as jnp, optax, relucomp
    >>> x = jnp.linspace(-1.0, 1.0, 50)[:, None]
    >>> y = jnp.abs(x[:, 0]) ** 1.5
    >>> params = [{"kernel": jax.random.normal(jax.random.key(0), (1, 8)),
    ...            "bias": jnp.linspace(-1.0, 1.0, 8)},
    ...           {"kernel": jnp.zeros((8, 1)), "bias": jnp.zeros(1)}]
    >>> residual_fn = lambda p, b: relucomp.mlp_apply(p, b[0])[:, 0] - b[1]
    >>> tx = relucomp.block_gauss_newton()
    >>> state = tx.init(params)
    >>> loss = lambda p: float(jnp.mean(residual_fn(p, (x, y)) ** 2))
    >>> start = loss(params)
    >>> for _ in range(30):
    ...   updates, state = tx.update(None, state, params, residual_fn=residual_fn,
    ...                              batch=(x, y))
    ...   params = optax.apply_updates(params, updates)
    >>> bool(loss(params) < 0.05 * start), int(state.accepted) > 0
    (True, True)
  """
  check = _levenberg._check_factor
  damping = check(damping, "damping", 0.0, strict=True)
  increase = check(increase, "increase", 1.0, strict=True)
  decrease = check(decrease, "decrease", 1.0, strict=True)
  min_damping = check(min_damping, "min_damping", 0.0, strict=True)
  if min_damping > damping:
    raise ValueError(f"min_damping must be <= damping = {damping}; got {min_damping!r}.")
  max_damping = check(max_damping, "max_damping", damping, strict=False)
  if not isinstance(momentum, bool):
    raise ValueError(f"momentum must be True or False; got {momentum!r}.")
  if blocks is not None and not callable(blocks):
    raise ValueError("blocks must be None or a function of the params returning one "
                     f"integer label per parameter; got {type(blocks).__name__}.")
  label_fn = parameter_blocks if blocks is None else blocks

  def init(params: Any) -> BlockGaussNewtonState:
    flat, _ = ravel_pytree(params)
    return BlockGaussNewtonState(damping=jnp.asarray(damping, flat.dtype),
                                 accepted=jnp.zeros((), jnp.int32),
                                 previous=jnp.zeros_like(flat))

  def update_fn(updates: Any, state: BlockGaussNewtonState, params: Any = None, *,
                residual_fn: Optional[Callable[..., jax.Array]] = None, batch: Any = None,
                **extra_args: Any) -> tuple[Any, BlockGaussNewtonState]:
    del updates, extra_args
    if params is None or residual_fn is None:
      raise ValueError("block_gauss_newton needs params and residual_fn in update(updates, "
                       "state, params, residual_fn=..., batch=...).")
    flat, unravel = ravel_pytree(params)
    index, valid = _block_index(label_fn(params), flat.shape[0])
    r, jac, res = _jacobian(residual_fn, flat, unravel, batch)
    lam = state.damping.astype(flat.dtype)
    delta = _step(jac, r, state.previous.astype(flat.dtype), lam, index, valid, momentum)
    before = jnp.sum(r * r)
    after = jnp.sum(res(flat - delta) ** 2)
    keep = jnp.isfinite(after) & (after < before) & jnp.all(jnp.isfinite(delta))
    step = jnp.where(keep, -delta, jnp.zeros_like(delta))
    lam = jnp.where(keep, jnp.maximum(lam / decrease, min_damping),
                    jnp.minimum(lam * increase, max_damping))
    return unravel(step), BlockGaussNewtonState(
        damping=lam.astype(state.damping.dtype),
        accepted=state.accepted + keep.astype(jnp.int32),
        previous=jnp.where(keep, step, state.previous).astype(state.previous.dtype))

  return BatchResidualTransformation(init, update_fn)
