"""Regions through training: exact piece counts of the snapshots ``fit`` keeps."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from relucomp import _regions
from relucomp._result import FitResult

__all__ = ["PiecesHistory", "pieces_history"]


class PiecesHistory(NamedTuple):
  """Exact piece counts of a fit's snapshots.

  Attributes:
    steps: the training step of each snapshot (``0, k, 2k, ...``; step 0 is
      the starting network), shape ``(S,)``.
    counts: the number of linear pieces on the fit's interval (one input)
      or of activation regions on the rectangle spanned by the inputs (two
      inputs), shape ``batch + (S,)`` (``batch`` is empty for one fit,
      ``(B,)`` for a vmapped fit of ``B`` models).
    stage2_start: the step at which stage 2 starts (equal to
      ``pretrain_steps`` for two-stage methods, 0 otherwise).

  Example:
    >>> import jax, jax.numpy as jnp
    >>> import relucomp
    >>> x = jnp.linspace(0.0, 1.0, 50)
    >>> res = relucomp.fit(x, x ** 3, key=jax.random.key(0), depth=3, pretrain_steps=40,
    ...                    finetune_steps=40, track_pieces_every=20,
    ...                    optimizer="adam")   # the law holds all through stage 1
    >>> hist = relucomp.pieces_history(res)
    >>> hist.steps.tolist(), hist.counts[:3].tolist()   # 2^3 pieces all through stage 1
    ([0, 20, 40, 60, 80], [8, 8, 8])
  """
  steps: np.ndarray
  counts: np.ndarray
  stage2_start: int


#: Methods whose fits train in two stages (snapshots switch stage there).
TWO_STAGE_METHODS = ("enforced", "free_scales", "dc", "compositional")


def pieces_history(result: FitResult, *, merge: bool | None = None) -> PiecesHistory:
  """Counts the exact linear pieces (or regions) of every snapshot of a fit.

  ``fit(..., track_pieces_every=k)`` keeps the network every ``k`` steps;
  this counts each one exactly, so a user sees whether training keeps,
  gains or loses regions. Networks of one input (every 1-D method,
  ``"dc"`` included) are counted with :func:`relucomp.linear_pieces_1d` on
  the interval of the training inputs; networks of two inputs
  (``"compositional"`` or ``"kaiming"`` on ``x`` of shape ``(n, 2)``) with
  :func:`relucomp.regions_2d` on the rectangle ``[min x, max x]`` of each
  feature. Runs on the host (NumPy, float64).

  Args:
    result: a :class:`relucomp.FitResult` from ``fit`` (or a vmapped fit)
      with ``track_pieces_every`` set.
    merge: for one input, passed to :func:`relucomp.linear_pieces_1d`
      (``True``, the default, counts linear pieces, ``False`` activation
      regions). Two-input counts are always activation regions, so only
      ``None`` (the default) or ``False`` are accepted there.

  Returns:
    A :class:`PiecesHistory`.

  Raises:
    ValueError: if ``result`` is not a :class:`relucomp.FitResult`, if the
      fit kept no snapshots (``track_pieces_every`` was
      ``None``), or on ``merge=True`` for a two-input fit.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> import relucomp
    >>> x = jnp.linspace(-1.0, 1.0, 60)
    >>> res = relucomp.fit(x, jnp.exp(x), key=jax.random.key(1), depth=4,
    ...                    pretrain_steps=30, finetune_steps=30, track_pieces_every=10,
    ...                    optimizer="adam")
    >>> hist = relucomp.pieces_history(res)
    >>> hist.stage2_start, hist.steps.shape, hist.counts.shape
    (30, (7,), (7,))
    >>> hist.counts[:4].tolist()              # exactly 2^4 through stage 1
    [16, 16, 16, 16]
  """
  if not isinstance(result, FitResult):
    raise ValueError(f"result must be a FitResult; got {type(result).__name__}.")
  if result.snapshots is None or result.track_pieces_every is None:
    raise ValueError(
        "result has no snapshots: call fit(..., track_pieces_every=k) with k >= 1 to keep them.")
  layers = [{name: np.asarray(a) for name, a in layer.items()} for layer in result.snapshots]
  interval = np.asarray(result.interval, dtype=np.float64)
  n_in = layers[0]["kernel"].shape[-2]
  if n_in == 2 and merge:
    raise ValueError("merge=True applies to fits of one input; the counts of a two-input "
                     "fit are its activation regions (pass merge=None or False).")
  # Interval: batch + (2,) for one input, batch + (2, 2) (feature, min/max) for two.
  batch_shape = interval.shape[:-1] if n_in == 1 else interval.shape[:-2]
  n_snap = layers[0]["kernel"].shape[len(batch_shape)]
  counts = np.empty(batch_shape + (n_snap,), dtype=np.int64)
  for index in np.ndindex(*batch_shape, n_snap):
    params = [{name: a[index] for name, a in layer.items()} for layer in layers]
    box = interval[index[:-1]]
    if n_in == 1:
      counts[index] = _regions.linear_pieces_1d(params, box[0], box[1],
                                                merge=merge is not False).count
    else:
      counts[index] = _regions.regions_2d(params, box[:, 0], box[:, 1]).count
  steps = np.arange(n_snap) * result.track_pieces_every
  two_stage = result.method in TWO_STAGE_METHODS
  return PiecesHistory(steps=steps, counts=counts,
                       stage2_start=result.pretrain_steps if two_stage else 0)
