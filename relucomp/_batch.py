"""Many fits at once: the batch axis sharded over every visible device."""

from __future__ import annotations

import functools
from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jax.typing import ArrayLike

from relucomp import _training
from relucomp import _validation as v

__all__ = ["fit_batch"]

_AXIS = "batch"


def _hashable(value: Any) -> Any:
  if isinstance(value, list):
    return tuple(_hashable(v_) for v_ in value)
  if isinstance(value, (np.ndarray, jax.Array)):
    return tuple(np.asarray(value).ravel().tolist())
  return value


@functools.lru_cache(maxsize=64)
def _program(devices: tuple, batched_y: bool, settings: tuple):
  """One jitted, vmapped fit per (devices, layout, settings): no recompiling."""
  mesh = Mesh(np.asarray(devices, dtype=object), (_AXIS,))
  sharded = NamedSharding(mesh, PartitionSpec(_AXIS))
  kwargs = dict(settings)

  def one(key, y, x):
    return _training.fit(x, y, key=key, **kwargs)

  in_axes = (0, 0 if batched_y else None, None)
  program = jax.jit(jax.vmap(one, in_axes=in_axes))
  return program, sharded, NamedSharding(mesh, PartitionSpec())


def fit_batch(x: ArrayLike, y: ArrayLike, *, keys: jax.Array,
              devices: Optional[Sequence[jax.Device]] = None,
              **fit_kwargs: Any) -> _training.FitResult:
  """Fits one model per key (and per target), sharded over devices.

  This is ``jax.vmap`` of :func:`relucomp.fit` over ``keys`` (and over the
  rows of ``y`` when ``y`` is 2-D), compiled once per set of settings, with
  the batch axis laid out over a 1-D device mesh by a
  :class:`jax.sharding.NamedSharding`. Each device trains its share of the
  models; the numbers do not depend on how many devices there are, up to
  float rounding (a device's share is a batch of another size, which XLA
  may sum in another order: a few units in the last place). A batch
  that does not divide evenly is padded (by repeating its last entry) and
  the padding dropped from the result.

  On one machine with several accelerators nothing needs to be set: every
  visible device is used. For several hosts, start each process with
  ``jax.distributed.initialize()`` and pass ``devices=jax.devices()``
  (all processes' devices); every process calls ``fit_batch`` with the same
  arguments. To try the sharded path on a CPU, set
  ``XLA_FLAGS=--xla_force_host_platform_device_count=2`` before JAX starts.

  Args:
    x: inputs, shape ``(n,)`` (shared by every model).
    y: targets, shape ``(n,)`` (one target for every model) or ``(B, n)``
      (one target per key).
    keys: PRNG keys, shape ``(B,)`` (for example ``jax.random.split(key, B)``).
    devices: the devices to shard over; default every visible device.
    **fit_kwargs: settings passed to :func:`relucomp.fit` (``method``,
      ``depth``, ``pretrain_steps``, ...). They must be hashable (numbers,
      strings, tuples, optax transformations).

  Returns:
    A :class:`relucomp.FitResult` whose array fields have a leading batch
    axis of length ``B``.

  Raises:
    ValueError: if ``keys`` is not a 1-D batch of keys, ``y`` is 2-D with a
      number of rows other than ``len(keys)``, ``x``/``y`` shapes do not
      match, ``y`` is not finite, ``devices`` is empty, or ``fit`` rejects
      a setting.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> import relucomp
    >>> x = jnp.linspace(0.0, 1.0, 40)
    >>> res = relucomp.fit_batch(x, x ** 2, keys=jax.random.split(jax.random.key(0), 3),
    ...                          depth=3, pretrain_steps=50, finetune_steps=50)
    >>> res.mse.shape, res.params[0]["kernel"].shape
    ((3,), (3, 1, 4))
  """
  keys = jnp.asarray(keys)
  if not jnp.issubdtype(keys.dtype, jax.dtypes.prng_key):
    if keys.ndim == 2 and keys.dtype == jnp.uint32:
      keys = jax.random.wrap_key_data(keys)
    else:
      raise ValueError(
          "keys must be a 1-D batch of PRNG keys (e.g. jax.random.split(key, B)); "
          f"got dtype {keys.dtype} and shape {keys.shape}.")
  if keys.ndim != 1 or keys.shape[0] < 1:
    raise ValueError(f"keys must be a non-empty 1-D batch of keys; got shape {keys.shape}.")
  batch = keys.shape[0]
  x = jnp.asarray(x)
  y = jnp.asarray(y)
  if x.ndim != 1:
    raise ValueError(f"x must have shape (n,); got {x.shape}.")
  if y.ndim not in (1, 2) or y.shape[-1] != x.shape[0]:
    raise ValueError(f"y must have shape (n,) or (B, n) with n = {x.shape[0]}; got {y.shape}.")
  if y.ndim == 2 and y.shape[0] != batch:
    raise ValueError(
        f"y has {y.shape[0]} rows but keys has {batch} entries; a 2-D y needs one row per key.")
  v.check_finite(x, "x")
  v.check_finite(y, "y")
  devices = tuple(jax.devices() if devices is None else devices)
  if not devices:
    raise ValueError("devices must name at least one device.")
  # Let fit validate the settings (and x, y) eagerly on one concrete problem.
  probe_y = y[0] if y.ndim == 2 else y
  settings = tuple(sorted((k, _hashable(val)) for k, val in fit_kwargs.items()))
  _check_settings(x, probe_y, fit_kwargs)

  n_dev = len(devices)
  padded = -(-batch // n_dev) * n_dev
  pad = lambda a: jnp.concatenate([a, jnp.repeat(a[-1:], padded - batch, axis=0)]) if padded > batch else a
  program, sharded, replicated = _program(devices, y.ndim == 2, settings)
  keys_in = jax.device_put(pad(keys), sharded)
  y_in = jax.device_put(pad(y), sharded) if y.ndim == 2 else jax.device_put(y, replicated)
  x_in = jax.device_put(x, replicated)
  result = program(keys_in, y_in, x_in)
  if padded > batch:
    result = jax.tree.map(lambda a: a[:batch], result)
  return result


def _check_settings(x, y, fit_kwargs) -> None:
  """Runs fit's own argument checks by tracing it abstractly (no training)."""
  jax.eval_shape(lambda k: _training.fit(x, y, key=k, **fit_kwargs), jax.random.key(0))
