"""Many fits at once: the batch axis sharded over devices, hosts included."""

from __future__ import annotations

import functools
import zlib
from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jax.typing import ArrayLike

from relucomp import _validation as v
from relucomp._result import FitResult

__all__ = ["fit_batch"]

_AXIS = "batch"

#: Models trained side by side (one ``vmap``) on a device; larger local
#: batches run as a ``lax.map`` over chunks of about this size. A chunk's
#: working set (activations of every point, both directions, and the
#: optimiser state) stays in the CPU caches, so the cost per model does not
#: grow with the batch (see ``benchmarks/speed.py``).
CHUNK_SIZE = 64


def _fit():
  """``relucomp.fit`` (imported late: the training modules import this package)."""
  from relucomp import _fit  # pylint: disable=import-outside-toplevel
  return _fit.fit


def _hashable(value: Any) -> Any:
  if isinstance(value, list):
    return tuple(_hashable(v_) for v_ in value)
  if isinstance(value, (np.ndarray, jax.Array)):
    return tuple(np.asarray(value).ravel().tolist())
  return value


def _layout(batch: int, n_dev: int, chunk_size: int) -> tuple[int, int]:
  """``(models per chunk, chunks per device)`` for ``batch`` models.

  Every device gets ``ceil(batch / n_dev)`` models, split into the fewest
  chunks of at most ``chunk_size``, all of one size (so one program is
  compiled), the batch padded up to ``n_dev * chunks * size``.
  """
  local = -(-batch // n_dev)
  chunks = -(-local // chunk_size)
  return -(-local // chunks), chunks


@functools.lru_cache(maxsize=64)
def _program(devices: tuple, batched_y: bool, impl: str, chunk: int, settings: tuple):
  """One jitted fit per (devices, layout, chunk, settings): no recompiling.

  ``shard_map`` hands each device its block of keys (and targets); the
  block is trained as a ``lax.map`` over chunks, each chunk one ``vmap``.
  Nothing in a fit communicates between devices, so the varying-axis check
  of ``shard_map`` (which a ``scan`` carry started from constants fails) is
  off.
  """
  mesh = Mesh(np.asarray(devices, dtype=object), (_AXIS,))
  sharded = NamedSharding(mesh, PartitionSpec(_AXIS))
  replicated = NamedSharding(mesh, PartitionSpec())
  kwargs = dict(settings)
  fit = _fit()

  def local(key_data, y, x):
    keys = jax.random.wrap_key_data(key_data, impl=impl)
    if batched_y:
      return jax.lax.map(lambda ky: fit(x, ky[1], key=ky[0], **kwargs), (keys, y),
                         batch_size=chunk)
    return jax.lax.map(lambda k: fit(x, y, key=k, **kwargs), keys, batch_size=chunk)

  y_spec = PartitionSpec(_AXIS) if batched_y else PartitionSpec()
  mapped = jax.shard_map(local, mesh=mesh,
                         in_specs=(PartitionSpec(_AXIS), y_spec, PartitionSpec()),
                         out_specs=PartitionSpec(_AXIS), check_vma=False)
  return jax.jit(mapped), sharded, replicated


def _global(host: np.ndarray, sharding: NamedSharding) -> jax.Array:
  """A global array from the same host array in every process: each process
  fills only its own devices' shards."""
  return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def _check_keys(keys: Any) -> jax.Array:
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
  return keys


def _check_devices(devices: Optional[Sequence[Any]], batch: int) -> tuple:
  everything = jax.devices()
  devices = tuple(everything if devices is None else devices)
  if not devices:
    raise ValueError("devices must name at least one device.")
  if not all(isinstance(d, jax.Device) for d in devices) or len(set(devices)) != len(devices):
    raise ValueError(f"devices must be distinct jax.Device objects; got {devices!r}.")
  if jax.process_count() > 1 and set(devices) != set(everything):
    raise ValueError(
        f"devices must be all the processes' devices (jax.devices(), {len(everything)} "
        f"devices over {jax.process_count()} processes) under jax.distributed; got "
        f"{len(devices)} devices of processes {sorted({d.process_index for d in devices})}.")
  if batch < len(devices):
    raise ValueError(
        f"keys has {batch} entries but devices has {len(devices)}: the batch must have at "
        f"least one model per device (pass fewer devices, e.g. devices=jax.devices()[:{batch}]"
        + (")." if jax.process_count() == 1 else ", on one process)."))
  return devices


_calls = [0]   # fit_batch calls of this process under jax.distributed: barrier names


def _meet(timeout: float) -> None:
  """Waits (at most ``timeout`` seconds) until every process has called fit_batch.

  Every process calls fit_batch the same number of times in the same order,
  so the n-th call of each meets at barrier n. A process that died, or never
  calls, makes the others raise instead of blocking in a collective.
  """
  from jax._src import distributed  # pylint: disable=import-outside-toplevel
  client = distributed.global_state.client
  _calls[0] += 1
  try:
    client.wait_at_barrier(f"relucomp.fit_batch.{_calls[0]}", int(timeout * 1000))
  except Exception as e:  # the runtime raises JaxRuntimeError(DEADLINE_EXCEEDED, ...)
    raise TimeoutError(
        f"fit_batch: not every one of the {jax.process_count()} processes called fit_batch "
        f"within timeout={timeout:g} s (call {_calls[0]} of process {jax.process_index()}); "
        "a process died or is doing other work. The runtime said: "
        f"{str(e).splitlines()[0]}") from e


def _check_same_everywhere(**arrays: np.ndarray) -> None:
  """Under jax.distributed: every process must pass the same arguments."""
  from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
  names = sorted(arrays)
  mine = np.asarray([zlib.crc32(np.ascontiguousarray(arrays[n]).tobytes()) for n in names],
                    dtype=np.uint32)
  every = np.asarray(multihost_utils.process_allgather(mine))   # (processes, arguments)
  for j, name in enumerate(names):
    if not np.all(every[:, j] == every[0, j]):
      raise ValueError(
          f"{name} differs between processes: under jax.distributed every process must "
          "call fit_batch with the same (global) arguments.")


def fit_batch(x: ArrayLike, y: ArrayLike, *, keys: jax.Array,
              devices: Optional[Sequence[jax.Device]] = None,
              chunk_size: int = CHUNK_SIZE, timeout: float = 300.0,
              **fit_kwargs: Any) -> FitResult:
  """Fits one model per key (and per target), sharded over devices and hosts.

  This is ``jax.vmap`` of :func:`relucomp.fit` over ``keys`` (and over the
  rows of ``y`` when ``y`` is 2-D), compiled once per set of settings, with
  the batch axis laid out over a 1-D device mesh (``jax.shard_map``). Each
  device trains its share of the models as a ``lax.map`` over chunks of at
  most ``chunk_size`` models, each chunk one ``vmap``: the cost per model
  stays flat as the batch grows. A batch that does not divide evenly is
  padded (by repeating its last entry) and the padding dropped from the
  result.

  The numbers do not depend on the number of devices or processes, up to
  float rounding: a device's chunk is a batch of another width, which XLA
  may reduce in another order.

  On one machine every visible device is used. Under ``jax.distributed``
  (several processes, for example one per host), every process calls
  ``fit_batch`` with the same global arguments (all keys, all targets); the
  default ``devices`` is then every process's devices, and each process
  builds only its own devices' shards of the inputs. The result is gathered:
  every process receives the whole batch, as arrays on its own devices, so
  it can be indexed, saved with :func:`relucomp.save` or reduced anywhere.

  Args:
    x: inputs, shape ``(n,)`` (shared by every model).
    y: targets, shape ``(n,)`` (one target for every model) or ``(B, n)``
      (one target per key).
    keys: PRNG keys, shape ``(B,)`` (for example ``jax.random.split(key, B)``),
      ``B`` at least the number of devices.
    devices: the devices to shard over; default ``jax.devices()``. Under
      ``jax.distributed`` it must be all the processes' devices.
    chunk_size: the most models one device trains side by side (one
      ``vmap``), ``>= 1``; default 64.
    timeout: under ``jax.distributed``, the seconds to wait for every
      process to reach this call before raising ``TimeoutError`` (> 0).
    **fit_kwargs: settings passed to :func:`relucomp.fit` (``method``,
      ``depth``, ``pretrain_steps``, ...), not ``key`` (that is ``keys``).
      They must be hashable (numbers, strings, tuples, optax transformations).

  Returns:
    A :class:`relucomp.FitResult` whose array fields have a leading batch
    axis of length ``B``; with one process sharded over ``devices``, under
    ``jax.distributed`` the whole batch on every process.

  Raises:
    TimeoutError: under ``jax.distributed``, if not every process calls
      ``fit_batch`` within ``timeout`` seconds.
    ValueError: if ``keys`` is not a 1-D batch of keys or has fewer entries
      than ``devices``, ``y`` is 2-D with a number of rows other than
      ``len(keys)``, ``x``/``y`` shapes do not match, ``y`` is not finite,
      ``devices`` is empty, repeats a device or (under ``jax.distributed``)
      is not all the processes' devices, the processes pass different
      ``x``, ``y`` or ``keys``, ``chunk_size < 1``, ``timeout <= 0``, ``key`` is passed as a
      setting, or ``fit`` rejects a setting.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> import relucomp
    >>> x = jnp.linspace(0.0, 1.0, 40)
    >>> res = relucomp.fit_batch(x, x ** 2, keys=jax.random.split(jax.random.key(0), 3),
    ...                          depth=3, pretrain_steps=50, finetune_steps=50)
    >>> res.mse.shape, res.params[0]["kernel"].shape
    ((3,), (3, 1, 4))
  """
  if "key" in fit_kwargs:
    raise ValueError("key is not a setting of fit_batch: pass one key per model as keys= "
                     "(e.g. keys=jax.random.split(key, B)).")
  if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or (
      chunk_size < 1):
    raise ValueError(f"chunk_size must be an integer >= 1; got {chunk_size!r}.")
  if not (isinstance(timeout, (int, float, np.number)) and np.isfinite(timeout)
          and timeout > 0):
    raise ValueError(f"timeout must be a positive number of seconds; got {timeout!r}.")
  keys = _check_keys(keys)
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
  devices = _check_devices(devices, batch)
  # Let fit validate the settings (and x, y) eagerly on one concrete problem.
  _check_settings(x, y[0] if y.ndim == 2 else y, fit_kwargs)
  settings = tuple(sorted((k, _hashable(val)) for k, val in fit_kwargs.items()))

  key_data = np.asarray(jax.random.key_data(keys))
  x_host, y_host = np.asarray(x), np.asarray(y)
  if jax.process_count() > 1:
    _meet(float(timeout))
    _check_same_everywhere(keys=key_data, x=x_host, y=y_host)
  size, chunks = _layout(batch, len(devices), int(chunk_size))
  padded = len(devices) * chunks * size
  pad = lambda a: np.concatenate([a, np.repeat(a[-1:], padded - batch, axis=0)])
  program, sharded, replicated = _program(devices, y.ndim == 2, jax.random.key_impl(keys),
                                          size, settings)
  result = program(_global(pad(key_data), sharded),
                   _global(pad(y_host), sharded) if y.ndim == 2 else _global(y_host, replicated),
                   _global(x_host, replicated))
  if jax.process_count() > 1:
    return _gather(result, batch)
  return jax.tree.map(lambda a: a[:batch], result) if padded > batch else result


def _gather(result: FitResult, batch: int) -> FitResult:
  """Every process gets the whole (unpadded) batch, on its own default device."""
  from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
  whole = multihost_utils.process_allgather(result, tiled=True)
  return jax.tree.map(lambda a: jnp.asarray(np.asarray(a)[:batch]), whole)


def _check_settings(x, y, fit_kwargs) -> None:
  """Runs fit's own argument checks by tracing it abstractly (no training)."""
  fit = _fit()
  jax.eval_shape(lambda k: fit(x, y, key=k, **fit_kwargs), jax.random.key(0))
