"""Levenberg-Marquardt steps for small least-squares fits, as an optax transformation.

Stage 2 of a fit trains the free weights of a small MLP (97 numbers for the
4-wide network of depth 5) on a few hundred points: a least-squares problem
small enough to form the Jacobian ``J`` of the residuals and solve the damped
Gauss-Newton system

  ``(J^T J + lambda (diag(J^T J) + eps max diag(J^T J) I)) delta = J^T r``

at every step. A step is kept only if it lowers the sum of squared
residuals; then ``lambda`` shrinks, otherwise the parameters stay and
``lambda`` grows. optax has no such transformation, so it is written here,
in optax's interface: the training loops of :func:`relucomp.fit` hand it
the residual function as the extra argument ``residual_fn``.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from relucomp._linalg import spd_solve

__all__ = ["LevenbergMarquardtState", "ResidualTransformation", "levenberg_marquardt",
           "update", "takes_batch", "jacobian"]


class LevenbergMarquardtState(NamedTuple):
  """State of :func:`levenberg_marquardt`.

  Attributes:
    damping: the current ``lambda`` (scalar).
    accepted: how many steps were kept so far (int32 scalar).

  Example:
    >>> import jax.numpy as jnp, relucomp
    >>> tx = relucomp.levenberg_marquardt(damping=0.1)
    >>> state = tx.init(jnp.zeros(2))
    >>> _, state = tx.update(None, state, jnp.zeros(2),
    ...                      residual_fn=lambda p: p - jnp.array([1.0, 2.0]))
    >>> print(round(float(state.damping), 4), int(state.accepted))
    0.0333 1
  """
  damping: jax.Array
  accepted: jax.Array


class ResidualTransformation(optax.GradientTransformationExtraArgs):
  """An optax transformation whose ``update`` needs ``residual_fn``.

  The training loops of relucomp pass ``residual_fn`` (the residual vector
  as a function of the parameters) only to transformations of this type;
  other extra-argument transformations (such as ``optax.lbfgs``) get
  ``value``, ``grad`` and ``value_fn`` as before.
  """
  __slots__ = ()


class _BatchedLevenbergMarquardt(ResidualTransformation):
  """:func:`levenberg_marquardt`: also takes ``residual_fn(params, batch)`` and
  ``batch`` (see :func:`takes_batch`)."""
  __slots__ = ()


def takes_batch(tx: Any) -> bool:
  """Whether ``tx.update`` also accepts ``residual_fn(params, batch)`` with ``batch``.

  Training loops that know the examples (the inputs and targets along a
  leading axis) pass them so; :func:`levenberg_marquardt` then forms the
  Jacobian one example at a time (reverse mode per example, a few times
  the cost of one forward pass for all of them) instead of by one forward
  pass per parameter.
  """
  return isinstance(tx, _BatchedLevenbergMarquardt)


def jacobian(residual_fn: Callable, flat: jax.Array, unravel: Callable,
             batch: Any = None) -> jax.Array:
  """The Jacobian ``(m, P)`` of the raveled residuals at ``flat``.

  Without ``batch``, ``residual_fn(params)`` by forward mode (one tangent
  per parameter). With ``batch``, ``residual_fn(params, batch)`` whose
  residuals belong to the examples along the leading axis of ``batch``:
  the gradient of each example's residuals (a ``jax.vmap`` over the
  examples of a reverse-mode Jacobian), rows in the order of the raveled
  residuals.
  """
  if batch is None:
    return jax.jacfwd(lambda f: jnp.ravel(residual_fn(unravel(f))))(flat)

  def rows(example):
    single = jax.tree.map(lambda a: a[None], example)
    return jax.jacrev(lambda f: jnp.ravel(residual_fn(unravel(f), single)))(flat)

  jac = jax.vmap(rows)(batch)                       # (n, m_per_example, P)
  return jac.reshape(-1, flat.shape[0])


def _check_factor(value: float, name: str, minimum: float, strict: bool) -> float:
  ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (
      value > minimum if strict else value >= minimum) and value < float("inf")
  if not ok:
    raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} {minimum}; "
                     f"got {value!r}.")
  return float(value)


def levenberg_marquardt(*, damping: float = 1e-3, increase: float = 2.0,
                        decrease: float = 3.0, min_damping: float = 1e-7,
                        max_damping: float = 1e10,
                        per_example: bool = True) -> ResidualTransformation:
  """Levenberg-Marquardt steps on a least-squares loss, as an optax transformation.

  Every ``update`` forms the Jacobian ``J`` of the residuals ``r`` at the
  current parameters (forward mode, one tangent per parameter), solves
  ``(J^T J + lambda D) delta = J^T r`` with Marquardt's scaling
  ``D = diag(J^T J) + eps max(diag(J^T J)) I`` (``eps`` the dtype's
  machine epsilon, so a parameter the residuals do not depend on gets a
  zero step, not a singular system) and evaluates the residuals at
  ``params - delta``. If their sum of squares is finite and lower, the
  update is ``-delta`` and ``lambda`` is divided by ``decrease`` (down to
  ``min_damping``, so that it cannot underflow to zero and stay there);
  otherwise the update is zero and ``lambda`` is multiplied by ``increase``
  (up to ``max_damping``). The loss therefore never increases.

  The gradient handed to ``update`` is not used. The cost per step is one
  Jacobian (``P`` forward passes for ``P`` parameters) and one ``P x P``
  solve: meant for networks of at most a few hundred parameters, such as
  stage 2 of :func:`relucomp.fit`, where it is passed as the stage-2
  optimiser: ``optimizer=(None, relucomp.levenberg_marquardt())``.

  Given ``residual_fn(params, batch)`` and ``batch`` (the examples along a
  leading axis, as the training loop of :func:`relucomp.fit` passes them),
  the Jacobian is formed one example at a time instead
  (:func:`relucomp._levenberg.jacobian`): the same matrix, about ten times
  faster for the small MLPs of ``fit``. ``per_example=False`` declines the
  batch (for residuals that couple the examples, such as a
  variable-projection fit, whose residual at one example depends on all).

  Args:
    damping: starting ``lambda``, ``> 0``.
    increase: factor applied to ``lambda`` after a rejected step, ``> 1``.
    decrease: divisor applied to ``lambda`` after a kept step, ``> 1``.
    min_damping: lower bound of ``lambda``, ``> 0`` and ``<= damping``.
    max_damping: upper bound of ``lambda``, ``>= damping``.
    per_example: take ``residual_fn(params, batch)`` and ``batch`` when
      the training loop offers them.

  Returns:
    A :class:`ResidualTransformation` (an
    ``optax.GradientTransformationExtraArgs``) whose ``update(updates,
    state, params, *, residual_fn)`` requires ``params`` and
    ``residual_fn``, a function of parameters with the structure of
    ``params`` returning the residual array.

  Raises:
    ValueError: for a factor out of its range; from ``update``, without
      ``params`` or ``residual_fn``.

  Example:
    >>> import jax.numpy as jnp, optax, relucomp
    >>> x = jnp.linspace(0.0, 1.0, 20)
    >>> residual_fn = lambda p: p["a"] * jnp.exp(p["b"] * x) - 2.0 * jnp.exp(-x)
    >>> params = {"a": jnp.array(1.0), "b": jnp.array(0.0)}
    >>> tx = relucomp.levenberg_marquardt()
    >>> state = tx.init(params)
    >>> for _ in range(20):
    ...   updates, state = tx.update(None, state, params, residual_fn=residual_fn)
    ...   params = optax.apply_updates(params, updates)
    >>> print(round(float(params["a"]), 4), round(float(params["b"]), 4))
    2.0 -1.0
  """
  damping = _check_factor(damping, "damping", 0.0, strict=True)
  increase = _check_factor(increase, "increase", 1.0, strict=True)
  decrease = _check_factor(decrease, "decrease", 1.0, strict=True)
  min_damping = _check_factor(min_damping, "min_damping", 0.0, strict=True)
  if min_damping > damping:
    raise ValueError(f"min_damping must be <= damping = {damping}; got {min_damping!r}.")
  max_damping = _check_factor(max_damping, "max_damping", damping, strict=False)

  def init(params: Any) -> LevenbergMarquardtState:
    flat, _ = ravel_pytree(params)
    return LevenbergMarquardtState(damping=jnp.asarray(damping, flat.dtype),
                                   accepted=jnp.zeros((), jnp.int32))

  def update_fn(updates: Any, state: LevenbergMarquardtState, params: Any = None, *,
                residual_fn: Optional[Callable[..., jax.Array]] = None,
                batch: Any = None, **extra_args: Any) -> tuple[Any, LevenbergMarquardtState]:
    del updates, extra_args
    if params is None or residual_fn is None:
      raise ValueError("levenberg_marquardt needs params and residual_fn in update(updates, "
                       "state, params, residual_fn=...); relucomp.fit passes both.")
    flat, unravel = ravel_pytree(params)
    if batch is None:
      residuals = lambda f: jnp.ravel(residual_fn(unravel(f)))
    else:
      residuals = lambda f: jnp.ravel(residual_fn(unravel(f), batch))
    r = residuals(flat)
    jac = jacobian(residual_fn, flat, unravel, batch)
    gram = jac.T @ jac
    diag = jnp.diagonal(gram)
    scale = diag + jnp.finfo(flat.dtype).eps * jnp.max(diag)
    lam = state.damping
    delta = spd_solve(gram + jnp.diag(lam * scale), jac.T @ r)
    before = jnp.sum(r * r)
    after = jnp.sum(residuals(flat - delta) ** 2)
    keep = jnp.isfinite(after) & (after < before) & jnp.all(jnp.isfinite(delta))
    step = jnp.where(keep, -delta, jnp.zeros_like(delta))
    lam = jnp.where(keep, jnp.maximum(lam / decrease, min_damping),
                    jnp.minimum(lam * increase, max_damping))
    return unravel(step), LevenbergMarquardtState(
        damping=lam.astype(state.damping.dtype),
        accepted=state.accepted + keep.astype(jnp.int32))

  if not isinstance(per_example, bool):
    raise ValueError(f"per_example must be True or False; got {per_example!r}.")
  return (_BatchedLevenbergMarquardt if per_example else ResidualTransformation)(
      init, update_fn)


def update(opt: optax.GradientTransformation, grads: Any, state: Any, params: Any,
           value: jax.Array, value_fn: Callable[[Any], jax.Array],
           residual_fn: Callable[[Any], jax.Array]) -> tuple[Any, Any]:
  """``opt.update`` with the extra arguments ``opt`` takes.

  A :class:`ResidualTransformation` gets ``residual_fn``; any other
  ``GradientTransformationExtraArgs`` (L-BFGS) gets ``value``, ``grad`` and
  ``value_fn``; a plain transformation gets none.
  """
  if isinstance(opt, ResidualTransformation):
    return opt.update(grads, state, params, residual_fn=residual_fn)
  if isinstance(opt, optax.GradientTransformationExtraArgs):
    return opt.update(grads, state, params, value=value, grad=grads, value_fn=value_fn)
  return opt.update(grads, state, params)
