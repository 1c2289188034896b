"""Saving and loading fit results (flax msgpack, checksummed, written atomically).

A file is a msgpack map ``{"format", "version", "checksum", "payload"}``:
``payload`` is the msgpack serialisation (``flax.serialization``) of the
result and ``checksum`` is ``"sha256:"`` followed by the SHA-256 digest of
those bytes, so any change of the payload (a flipped bit, a truncated or
hand-edited file) is refused by :func:`load`. On top of the checksum,
:func:`load` validates the schema of the payload (settings, array shapes and
dtypes, layers that chain), so a file written by something else with a valid
checksum still cannot load as a malformed result.

:func:`save` writes to a temporary file in the target's directory, flushes
it to disk and renames it over the target (``os.replace``, atomic on POSIX
and Windows): a save that fails leaves the old file untouched, and a reader
or another process saving to the same path at the same time sees either the
old file or a complete new one.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from typing import Any

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from relucomp import _mlp
from relucomp._result import FitResult

__all__ = ["save", "load", "METHODS"]

_FORMAT = "relucomp.FitResult"
_FORMAT_VERSION = 2
_HASH = "sha256"

#: The training methods a result file may name (those of :func:`relucomp.fit`;
#: a test checks that the two lists agree).
METHODS = ("enforced", "free_scales", "no_pretrain", "kaiming", "raai", "dc", "compositional")
_OPTIMIZERS = ("adam", "custom")
_INT_SETTINGS = ("depth", "pretrain_steps", "finetune_steps", "track_pieces_every", "n_params")
_SETTINGS = ("method", "depth", "pretrain_steps", "finetune_steps", "track_pieces_every",
             "curvature", "optimizer", "n_params")
_ARRAYS = ("mse", "history", "diverged", "interval", "y_range", "sign", "learning_rate")
#: Arrays a result may lack (``rmse``: results made before it existed).
_OPTIONAL_ARRAYS = ("rmse",)
_PRETRAINED = ("bias", "peaks", "scales", "slope")
_FLOATS = (np.float16, np.float32, np.float64, jnp.bfloat16)


def _to_numpy(tree):
  return jax.tree.map(np.asarray, tree)


def _check_settings(settings: dict, where: str) -> None:
  """Raises ValueError unless the static fields have the types ``fit`` gives."""
  if settings["method"] not in METHODS:
    raise ValueError(f"{where}method must be one of {METHODS}; got {settings['method']!r}.")
  if settings["optimizer"] not in _OPTIMIZERS:
    raise ValueError(f"{where}optimizer must be one of {_OPTIMIZERS}; got "
                     f"{settings['optimizer']!r}.")
  if not isinstance(settings["curvature"], str):
    raise ValueError(f"{where}curvature must be a string; got {settings['curvature']!r}.")
  for name in _INT_SETTINGS:
    value = settings[name]
    if name == "track_pieces_every" and value is None:
      continue
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 0:
      raise ValueError(f"{where}{name} must be an integer >= 0; got {value!r}.")
  if settings["depth"] < 1:
    raise ValueError(f"{where}depth must be an integer >= 1; got {settings['depth']!r}.")


def _serialise(result: FitResult) -> bytes:
  """The payload bytes of ``result`` (raises ValueError before any file is touched)."""
  if not isinstance(result, FitResult):
    raise ValueError(f"result must be a FitResult; got {type(result).__name__}.")
  settings = {k: getattr(result, k) for k in _SETTINGS}
  _check_settings(settings, "result.")
  settings = {k: (int(val) if k in _INT_SETTINGS and val is not None else val)
              for k, val in settings.items()}
  settings["track_pieces_every"] = settings["track_pieces_every"] or 0
  state = {
      "settings": settings,
      "arrays": {k: np.asarray(getattr(result, k)) for k in _ARRAYS + _OPTIONAL_ARRAYS
                 if getattr(result, k) is not None},
      "params": {str(i): _to_numpy(layer) for i, layer in enumerate(result.params)},
  }
  if result.pretrained is not None:
    state["pretrained"] = _to_numpy(result.pretrained)
  if result.snapshots is not None:
    state["snapshots"] = {str(i): _to_numpy(layer) for i, layer in enumerate(result.snapshots)}
  _check_state(state, "result: ")            # what load would refuse is not written
  try:
    return flax.serialization.msgpack_serialize(state)
  except Exception as e:  # msgpack raises TypeError, OverflowError, ...
    raise ValueError(f"result cannot be serialised: {e!r}.") from None


def _envelope(payload: bytes) -> bytes:
  digest = hashlib.new(_HASH, payload).hexdigest()
  return flax.serialization.msgpack_serialize(
      {"format": _FORMAT, "version": _FORMAT_VERSION, "checksum": f"{_HASH}:{digest}",
       "payload": payload})


def _write_atomic(path: Any, data: bytes) -> None:
  """Writes ``data`` to a temporary file next to ``path``, then renames it over ``path``."""
  path = os.fspath(path)
  directory = os.path.dirname(os.path.abspath(path))
  try:
    mode = os.stat(path).st_mode & 0o777
  except OSError:
    mode = 0o644
  fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".",
                             suffix=".tmp")
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)
  except BaseException:
    try:
      os.unlink(tmp)
    except OSError:
      pass
    raise


def save(result: FitResult, path) -> None:
  """Writes a :class:`FitResult` to ``path``, atomically and with a checksum.

  The file is a msgpack map with ``format = "relucomp.FitResult"``,
  ``version``, ``checksum`` (SHA-256 of the payload) and ``payload``: the
  msgpack serialisation (``flax.serialization.msgpack_serialize``) of
  ``settings`` (the static fields), ``arrays`` (``mse``, ``history``, ...),
  ``params`` (list of layers), and ``pretrained`` / ``snapshots`` when
  present. Arrays are stored with their dtype and bytes, so :func:`load`
  returns them bit-exactly. A stacked result (from ``jax.vmap``) saves the
  same way.

  The result is serialised first and written to a temporary file in the
  same directory, which then replaces ``path`` (``os.replace``): a save that
  fails (a result that cannot be serialised, a full disk) leaves an existing
  file at ``path`` as it was, and concurrent saves to one path leave one of
  the complete files.

  Args:
    result: the result of :func:`fit` (or of a vmapped fit).
    path (str | os.PathLike): the file to write.

  Raises:
    ValueError: if ``result`` is not a :class:`FitResult` or one of its
      fields is not what :func:`fit` gives (an unknown ``method``, a
      non-integer ``depth``, layers that do not chain, ...), naming it.
    OSError: if the file cannot be written (the old file is kept).

  Example:
    >>> import os, tempfile
    >>> import jax, jax.numpy as jnp
    >>> import relucomp
    >>> x = jnp.linspace(0.0, 1.0, 30)
    >>> res = relucomp.fit(x, x ** 2, key=jax.random.key(0), depth=2,
    ...                    pretrain_steps=20, finetune_steps=20)
    >>> path = os.path.join(tempfile.mkdtemp(), "fit.msgpack")
    >>> relucomp.save(res, path)
    >>> os.path.getsize(path) > 0
    True
  """
  data = _envelope(_serialise(result))
  if not isinstance(path, (str, bytes, os.PathLike)):
    raise ValueError(f"path must be a str or os.PathLike; got {type(path).__name__}.")
  _write_atomic(path, data)


def _shape_of(state: dict, section: str, key: str) -> tuple:
  value = state[section][key]
  if not isinstance(value, np.ndarray):
    raise ValueError(f"{section}.{key} must be an array; got {type(value).__name__}.")
  return value.shape


def _check_float(value: Any, name: str) -> None:
  if not isinstance(value, np.ndarray) or value.dtype not in [np.dtype(t) for t in _FLOATS]:
    got = getattr(value, "dtype", type(value).__name__)
    raise ValueError(f"{name} must be a float array (float16, bfloat16, float32 or "
                     f"float64); got {got}.")


def _check_layers(tree: Any, name: str, batch: tuple) -> list[dict[str, np.ndarray]]:
  """The layers of ``tree`` (``{"0": layer, ...}``), checked: float arrays with a
  leading ``batch`` shape whose trailing shapes chain as an MLP's."""
  if not isinstance(tree, dict) or not tree or set(tree) != {str(i) for i in range(len(tree))}:
    raise ValueError(f"{name} must be a non-empty list of layers.")
  layers = []
  for i in range(len(tree)):
    layer = tree[str(i)]
    if not isinstance(layer, dict) or set(layer) != {"kernel", "bias"}:
      raise ValueError(f"{name}[{i}] must have exactly the keys 'kernel' and 'bias'.")
    for part in ("kernel", "bias"):
      _check_float(layer[part], f"{name}[{i}]['{part}']")
      if layer[part].shape[:len(batch)] != batch:
        raise ValueError(f"{name}[{i}]['{part}'] must have the leading shape {batch}; got "
                         f"shape {layer[part].shape}.")
    layers.append({k: np.zeros(a.shape[len(batch):], np.int8) for k, a in layer.items()})
  _mlp.check_params(layers, name)            # shapes chain (zero-sized stand-ins)
  return [tree[str(i)] for i in range(len(tree))]


def _check_state(state: Any, where: str) -> None:
  """Raises ValueError unless ``state`` is a well-formed payload of this format."""
  if not isinstance(state, dict) or not {"settings", "arrays", "params"} <= set(state):
    raise ValueError(f"{where}the payload must hold settings, arrays and params.")
  extra = set(state) - {"settings", "arrays", "params", "pretrained", "snapshots"}
  if extra:
    raise ValueError(f"{where}the payload has unknown fields {sorted(extra)}.")
  for section, keys, optional in (("settings", _SETTINGS, ()),
                                  ("arrays", _ARRAYS, _OPTIONAL_ARRAYS)):
    fields = set(state[section]) if isinstance(state[section], dict) else None
    if fields is None or not set(keys) <= fields <= set(keys + optional):
      raise ValueError(f"{where}{section} must have exactly the fields {keys}"
                       + (f" and optionally {optional}" if optional else "") + ".")
  _check_settings(state["settings"], where)
  settings, arrays = state["settings"], state["arrays"]
  batch = _shape_of(state, "arrays", "mse")
  steps = settings["pretrain_steps"] + settings["finetune_steps"]
  expected = {"history": batch + (steps,), "diverged": batch, "y_range": batch + (2,),
              "sign": batch, "learning_rate": batch + (2,)}
  if "rmse" in arrays:
    expected["rmse"] = batch
  for key, shape in expected.items():
    if _shape_of(state, "arrays", key) != shape:
      raise ValueError(f"{where}arrays.{key} must have shape {shape}; got "
                       f"{arrays[key].shape}.")
  shape = _shape_of(state, "arrays", "interval")     # (2,) for one input, (n_in, 2) else
  if not (len(shape) in (len(batch) + 1, len(batch) + 2) and shape[:len(batch)] == batch
          and shape[-1] == 2):
    raise ValueError(f"{where}arrays.interval must have shape {batch + (2,)} or "
                     f"{batch + ('n_in', 2)}; got {shape}.")
  if arrays["diverged"].dtype != np.bool_:
    raise ValueError(f"{where}arrays.diverged must be boolean; got {arrays['diverged'].dtype}.")
  for key in _ARRAYS + tuple(k for k in _OPTIONAL_ARRAYS if k in arrays):
    if key != "diverged":
      _check_float(arrays[key], f"{where}arrays.{key}")
  params = _check_layers(state["params"], f"{where}params", batch)
  n_layers = (2 * settings["depth"] + 3 if settings["method"] == "compositional"
              else settings["depth"] + 1)
  if len(params) != n_layers:
    raise ValueError(f"{where}params has {len(params)} layers but depth is "
                     f"{settings['depth']} (method {settings['method']!r} has {n_layers}).")
  n_params = sum(int(np.prod(a.shape[len(batch):])) for layer in params for a in layer.values())
  # "compositional" counts the weights of its blocks, not of the written-out layers.
  if settings["method"] != "compositional" and n_params != settings["n_params"]:
    raise ValueError(f"{where}n_params is {settings['n_params']} but params hold "
                     f"{n_params} weights.")
  _check_optional(state, where, batch)


def _check_optional(state: dict, where: str, batch: tuple) -> None:
  """Checks ``pretrained`` and ``snapshots`` when present."""
  pretrained = state.get("pretrained")
  if pretrained is not None:
    if not isinstance(pretrained, dict) or set(pretrained) != set(_PRETRAINED):
      raise ValueError(f"{where}pretrained must have exactly the fields {_PRETRAINED}.")
    for key, value in pretrained.items():
      _check_float(value, f"{where}pretrained.{key}")
      if value.shape[:len(batch)] != batch:
        raise ValueError(f"{where}pretrained.{key} must have the leading shape {batch}.")
  snapshots = state.get("snapshots")
  every = state["settings"]["track_pieces_every"]
  if (snapshots is None) != (not every):
    raise ValueError(f"{where}snapshots must be present exactly when track_pieces_every "
                     f"is set; got track_pieces_every = {every!r}.")
  if snapshots is not None:
    first = snapshots.get("0") if isinstance(snapshots, dict) else None
    kernel = first.get("kernel") if isinstance(first, dict) else None
    if not isinstance(kernel, np.ndarray) or kernel.ndim < len(batch) + 3:
      raise ValueError(f"{where}snapshots must be a list of stacked layers.")
    layers = _check_layers(snapshots, f"{where}snapshots", kernel.shape[:len(batch) + 1])
    if kernel.shape[:len(batch)] != batch or len(layers) != len(state["params"]):
      raise ValueError(f"{where}snapshots must stack the layers of params.")


def _read_payload(path: Any, data: bytes) -> bytes | dict:
  """The checked payload of a file (bytes), or a version-1 state (no checksum)."""
  try:
    outer = flax.serialization.msgpack_restore(data)
  except Exception as e:  # msgpack raises several kinds of errors
    raise ValueError(f"{path} is not a readable relucomp result file: {e!r}.") from None
  if not isinstance(outer, dict) or outer.get("format") != _FORMAT:
    raise ValueError(f"{path} is not a relucomp result file (format tag missing or wrong).")
  if outer.get("version") == 1:
    warnings.warn(f"{path} has format version 1, which has no checksum: corruption cannot "
                  "be detected; save it again to add one.", UserWarning, stacklevel=3)
    return {k: val for k, val in outer.items() if k not in ("format", "version")}
  if outer.get("version") != _FORMAT_VERSION or set(outer) != {"format", "version", "checksum",
                                                                "payload"}:
    raise ValueError(f"{path} has format version {outer.get('version')!r} or unknown fields; "
                     f"this version of relucomp reads versions 1 and {_FORMAT_VERSION}.")
  payload = outer["payload"]
  if not isinstance(payload, bytes) or not isinstance(outer["checksum"], str):
    raise ValueError(f"{path} is not a valid relucomp result file (payload or checksum).")
  digest = hashlib.new(_HASH, payload).hexdigest()
  if outer["checksum"] != f"{_HASH}:{digest}":
    raise ValueError(f"{path} is corrupt: its checksum does not match its contents.")
  return payload


def load(path) -> FitResult:
  """Reads a :class:`FitResult` written by :func:`save`.

  The checksum is verified and the contents validated (settings, shapes
  and dtypes of every array, layers that chain, the number of layers for
  the method and depth) before anything is built.

  Arrays come back bit for bit as saved, in their saved dtype, when that
  dtype is available: float64 arrays need ``jax_enable_x64``. When it is
  off they are converted to float32 by JAX, and :func:`load` says so with a
  ``UserWarning`` (enable float64 before loading to keep them exact).

  Args:
    path (str | os.PathLike): a file written by :func:`save`.

  Returns:
    The :class:`FitResult`, its arrays equal bit for bit to the saved ones
    (see above for float64).

  Raises:
    ValueError: if the file is not a valid file of this format (corrupt:
      checksum mismatch; truncated; another kind of file; an unknown
      version; or contents that are not a well-formed result), naming what
      is wrong.
    OSError: if the file cannot be read.

  Example:
    >>> import os, tempfile
    >>> import jax, jax.numpy as jnp
    >>> import relucomp
    >>> x = jnp.linspace(0.0, 1.0, 30)
    >>> res = relucomp.fit(x, x ** 2, key=jax.random.key(0), depth=2,
    ...                    pretrain_steps=20, finetune_steps=20)
    >>> path = os.path.join(tempfile.mkdtemp(), "fit.msgpack")
    >>> relucomp.save(res, path)
    >>> back = relucomp.load(path)
    >>> bool(jnp.array_equal(back.params[0]["kernel"], res.params[0]["kernel"]))
    True
    >>> back.method, back.depth, bool(back.mse == res.mse)
    ('enforced', 2, True)
  """
  if not isinstance(path, (str, bytes, os.PathLike)):
    raise ValueError(f"path must be a str or os.PathLike; got {type(path).__name__}.")
  with open(path, "rb") as f:
    data = f.read()
  payload = _read_payload(path, data)
  if isinstance(payload, bytes):
    try:
      state = flax.serialization.msgpack_restore(payload)
    except Exception as e:  # msgpack raises several kinds of errors
      raise ValueError(f"{path} has an unreadable payload: {e!r}.") from None
  else:
    state = payload
  _check_state(state, f"{path}: ")
  return _build(state, path)


def _build(state: dict, path: Any) -> FitResult:
  """The :class:`FitResult` of a checked state (warns on a float64 downcast)."""
  arrays = [a for section in ("params", "snapshots") for layer in (state.get(section) or {}).values()
            for a in layer.values()]
  arrays += list(state["arrays"].values()) + list((state.get("pretrained") or {}).values())
  if not jax.config.jax_enable_x64 and any(a.dtype == np.float64 for a in arrays):
    warnings.warn(f"{path} holds float64 arrays but jax_enable_x64 is off: they are loaded "
                  "as float32 (call jax.config.update('jax_enable_x64', True) before load "
                  "to keep them exact).", UserWarning, stacklevel=3)
  settings = dict(state["settings"])
  settings["track_pieces_every"] = settings["track_pieces_every"] or None

  def layers(tree):
    return [{k: jnp.asarray(tree[str(i)][k]) for k in ("kernel", "bias")}
            for i in range(len(tree))]

  pretrained = state.get("pretrained")
  snapshots = state.get("snapshots")
  return FitResult(
      params=layers(state["params"]),
      pretrained=None if pretrained is None else {k: jnp.asarray(a) for k, a in pretrained.items()},
      snapshots=None if snapshots is None else layers(snapshots),
      **{k: jnp.asarray(state["arrays"][k]) for k in _ARRAYS + _OPTIONAL_ARRAYS
         if k in state["arrays"]}, **settings)
