"""Saving and loading fit results (flax msgpack)."""

from __future__ import annotations

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from relucomp._result import FitResult

__all__ = ["save", "load"]

_FORMAT = "relucomp.FitResult"
_FORMAT_VERSION = 1

_SETTINGS = ("method", "depth", "pretrain_steps", "finetune_steps", "track_pieces_every",
             "curvature", "optimizer", "n_params")
_ARRAYS = ("mse", "history", "diverged", "interval", "y_range", "sign", "learning_rate")


def _to_numpy(tree):
  return jax.tree.map(np.asarray, tree)


def save(result: FitResult, path) -> None:
  """Writes a :class:`FitResult` to ``path`` (flax msgpack).

  The file is a msgpack map (``flax.serialization.msgpack_serialize``)
  with ``format = "relucomp.FitResult"``, ``version``, ``settings`` (the
  static fields), ``arrays`` (``mse``, ``history``, ...), ``params`` (list
  of layers), and ``pretrained`` / ``snapshots`` when present. Arrays are
  stored with their dtype and bytes, so :func:`load` returns them
  bit-exactly. A stacked result (from ``jax.vmap``) saves the same way.

  Args:
    result: the result of :func:`fit` (or of a vmapped fit).
    path (str | os.PathLike): the file to write.

  Raises:
    ValueError: if ``result`` is not a :class:`FitResult`.

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
  if not isinstance(result, FitResult):
    raise ValueError(f"result must be a FitResult; got {type(result).__name__}.")
  settings = {k: getattr(result, k) for k in _SETTINGS}
  settings["track_pieces_every"] = settings["track_pieces_every"] or 0
  state = {
      "format": _FORMAT,
      "version": _FORMAT_VERSION,
      "settings": settings,
      "arrays": {k: np.asarray(getattr(result, k)) for k in _ARRAYS},
      "params": {str(i): _to_numpy(layer) for i, layer in enumerate(result.params)},
  }
  if result.pretrained is not None:
    state["pretrained"] = _to_numpy(result.pretrained)
  if result.snapshots is not None:
    state["snapshots"] = {str(i): _to_numpy(layer) for i, layer in enumerate(result.snapshots)}
  with open(path, "wb") as f:
    f.write(flax.serialization.msgpack_serialize(state))


def _layers(tree, what):
  if not isinstance(tree, dict) or not tree:
    raise ValueError(f"file has no valid {what}.")
  try:
    layers = [tree[str(i)] for i in range(len(tree))]
    return [{"kernel": jnp.asarray(l["kernel"]), "bias": jnp.asarray(l["bias"])} for l in layers]
  except (KeyError, TypeError) as e:
    raise ValueError(f"file has malformed {what}: {e!r}.") from None


def load(path) -> FitResult:
  """Reads a :class:`FitResult` written by :func:`save`.

  Args:
    path (str | os.PathLike): a file written by :func:`save`.

  Returns:
    The :class:`FitResult`, its arrays equal bit for bit to the saved ones.

  Raises:
    ValueError: if the file is not a valid msgpack file of this format
      (corrupt, truncated, another kind of file, or a mismatched version
      or missing field).

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
  with open(path, "rb") as f:
    data = f.read()
  try:
    state = flax.serialization.msgpack_restore(data)
  except Exception as e:  # msgpack raises several kinds of errors
    raise ValueError(f"{path} is not a readable relucomp result file: {e!r}.") from None
  if not isinstance(state, dict) or state.get("format") != _FORMAT:
    raise ValueError(f"{path} is not a relucomp result file (format tag missing or wrong).")
  if state.get("version") != _FORMAT_VERSION:
    raise ValueError(f"{path} has format version {state.get('version')!r}; this "
                     f"version of relucomp reads version {_FORMAT_VERSION}.")
  try:
    settings = dict(state["settings"])
    arrays = {k: jnp.asarray(state["arrays"][k]) for k in _ARRAYS}
    settings = {k: settings[k] for k in _SETTINGS}
  except (KeyError, TypeError) as e:
    raise ValueError(f"{path} is missing a field: {e!r}.") from None
  settings["track_pieces_every"] = settings["track_pieces_every"] or None
  params = _layers(state.get("params"), "params")
  # "compositional" writes its two layers out as 2 depth + 3 plain layers.
  n_layers = 2 * settings["depth"] + 3 if settings["method"] == "compositional" else (
      settings["depth"] + 1)
  if len(params) != n_layers:
    raise ValueError(f"{path}: params has {len(params)} layers but depth is "
                     f"{settings['depth']} (expected {n_layers}).")
  pretrained = state.get("pretrained")
  if pretrained is not None:
    pretrained = {k: jnp.asarray(a) for k, a in pretrained.items()}
  snapshots = state.get("snapshots")
  if snapshots is not None:
    snapshots = _layers(snapshots, "snapshots")
  return FitResult(params=params, pretrained=pretrained, snapshots=snapshots,
                   **arrays, **settings)
