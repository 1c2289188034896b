"""Input checks shared by every public function.

Checks run on concrete values only: inside ``jax.jit``, ``jax.vmap`` or
``jax.grad`` the values are tracers and cannot be inspected on the host. For
traced code, :func:`checkified` wraps any relucomp function so that the same
conditions are checked on device with :mod:`jax.experimental.checkify`.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

__all__ = ["checkified"]

_state = threading.local()


def _checkify_active() -> bool:
  return getattr(_state, "depth", 0) > 0


@contextlib.contextmanager
def _checkify_mode() -> Iterator[None]:
  _state.depth = getattr(_state, "depth", 0) + 1
  try:
    yield
  finally:
    _state.depth -= 1


def concrete(x: Any) -> np.ndarray | None:
  """Returns ``x`` as a NumPy array, or ``None`` if it is a tracer."""
  if isinstance(x, jax.core.Tracer):
    return None
  try:
    return np.asarray(x)
  except (jax.errors.TracerArrayConversionError,
          jax.errors.ConcretizationTypeError):
    return None


def host(value: Any) -> np.ndarray | None:
  """A NumPy copy of a concrete ``value`` with the dtype ``jnp.asarray`` would
  give it (``float64`` -> ``float32`` without ``jax_enable_x64``), or ``None``
  for a tracer. No XLA program is compiled or run."""
  arr = concrete(value)
  if arr is None:
    return None
  if arr.dtype.kind in "OUS":            # what JAX cannot hold: its own error
    arr = np.asarray(jnp.asarray(value))
  canonical = jax.dtypes.canonicalize_dtype(arr.dtype)
  if canonical != arr.dtype:
    with np.errstate(over="ignore", invalid="ignore"):
      arr = arr.astype(canonical)
  return arr


def require(condition_fn: Callable[[Any], Any], value: Any, message: str, *,
            host_fn: Callable[[np.ndarray], Any] | None = None) -> None:
  """Raises ``ValueError(message)`` unless ``condition_fn(value)`` holds.

  ``condition_fn`` is written with ``jnp`` operations so it serves both
  paths: evaluated eagerly on a concrete value, or turned into a
  ``checkify.check`` when :func:`checkified` is tracing the caller.
  ``host_fn``, the same condition in NumPy, is used instead on a concrete
  value (on :func:`host`'s copy: nothing is compiled).
  """
  if host_fn is not None:
    arr = host(value)
    if arr is not None:
      with np.errstate(all="ignore"):
        ok = bool(np.all(host_fn(arr)))
      if not ok:
        raise ValueError(message)
      return
  host_value = concrete(value)
  if host_value is not None:
    # Evaluate eagerly even while a caller is being traced (jit, checkify):
    # ``jnp`` operations on constants would otherwise become tracers.
    with jax.ensure_compile_time_eval():
      ok = bool(np.all(np.asarray(condition_fn(host_value))))
    if not ok:
      raise ValueError(message)
  elif _checkify_active():
    checkify.check(jnp.all(condition_fn(value)), message)


def check_real(value: Any, name: str) -> None:
  """Raises ``ValueError`` unless ``value`` holds real numbers (not complex, text, ...)."""
  dtype = getattr(value, "dtype", None)
  if dtype is None:
    try:
      dtype = np.asarray(value).dtype
    except (TypeError, ValueError):
      raise ValueError(f"{name} must be an array of real numbers; got "
                       f"{type(value).__name__}.") from None
  if not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)
          or jnp.issubdtype(dtype, jnp.bool_)):
    raise ValueError(f"{name} must hold real numbers; got dtype {dtype}.")


def array(value: Any, name: str) -> jax.Array:
  """``jnp.asarray(value)`` for an argument of real numbers, or a ValueError naming it."""
  if not isinstance(value, jax.Array):
    check_real(value, name)
  elif not isinstance(value, jax.core.Tracer):
    check_real(value, name)
  return jnp.asarray(value)


def check_scalar(value: Any, name: str) -> None:
  """Raises ``ValueError`` unless ``value`` is a scalar (shape ``()``)."""
  if jnp.ndim(value) != 0:
    raise ValueError(f"{name} must be a scalar; got shape {jnp.shape(value)}.")


def check_finite(value: Any, name: str) -> None:
  check_real(value, name)
  require(jnp.isfinite, value, f"{name} must be finite (no NaN or inf).",
          host_fn=np.isfinite)


def check_open_unit(value: Any, name: str) -> None:
  check_finite(value, name)
  inside = lambda v: (v > 0) & (v < 1)
  require(inside, value, f"{name} must lie in the open interval (0, 1); every entry "
          "must satisfy 0 < value < 1.", host_fn=inside)


def check_output(out: Any, names: str, dtype: Any) -> Any:
  """Returns ``out`` after checking that finite inputs gave finite values.

  Raises ``ValueError`` naming the arguments ``names`` when a value
  overflowed ``dtype`` (checked when concrete and under :func:`checkified`).
  """
  for leaf in jax.tree.leaves(out):
    if jnp.issubdtype(jnp.result_type(leaf), jnp.inexact):
      require(jnp.isfinite, leaf,
              f"{names} give values that overflow {jnp.dtype(dtype).name} (largest finite "
              f"{float(jnp.finfo(dtype).max):.3g}); use smaller inputs or float64.",
              host_fn=np.isfinite)
  return out


def float_dtype(*values: Any) -> jnp.dtype:
  """The floating dtype for ``values``: float64 under ``jax_enable_x64``."""
  # Lists and tuples of numbers count as arrays (jnp.result_type takes no lists).
  values = [jnp.asarray(x) if isinstance(x, (list, tuple)) else x for x in values]
  return jnp.result_type(*values, float)


def as_float(value: Any, dtype: Any = None) -> jax.Array:
  arr = jnp.asarray(value)
  return arr.astype(dtype if dtype is not None else float_dtype(arr))


def checkified(fn: Callable[..., Any]) -> Callable[..., tuple[checkify.Error, Any]]:
  """Wraps a relucomp function so its input checks also run under ``jit``.

  Outside of transformations relucomp raises ``ValueError`` on bad input
  right away. Under ``jax.jit`` (or ``vmap``) the values are abstract, so
  those checks are skipped. ``checkified(fn)`` traces ``fn`` with the checks
  turned into :func:`jax.experimental.checkify.check` calls and returns a
  function giving ``(error, result)``; call ``error.throw()`` outside of the
  transformation to raise a ``checkify.JaxRuntimeError`` naming the argument.

  Wrap the plain function, not an already-jitted one (a jitted function
  may have been traced earlier without the checks).

  Args:
    fn: any function built from relucomp's public functions.

  Returns:
    A function with the signature of ``fn`` returning ``(error, result)``.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> import relucomp
    >>> safe = jax.jit(relucomp.checkified(relucomp.compositional_mlp))
    >>> err, params = safe(jnp.array([0.5, 1.5]), jnp.array([0.25]))
    >>> err.get() is not None
    True
    >>> err, params = safe(jnp.array([0.5, 0.5]), jnp.array([0.25]))
    >>> err.throw()  # no error: nothing raised
  """
  checked = checkify.checkify(fn, errors=checkify.user_checks)

  @functools.wraps(fn)
  def wrapper(*args: Any, **kwargs: Any) -> tuple[checkify.Error, Any]:
    with _checkify_mode():
      return checked(*args, **kwargs)

  return wrapper
