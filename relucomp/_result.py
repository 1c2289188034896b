"""The result of a fit: trained MLP, losses and settings, as one pytree."""

from __future__ import annotations

import warnings
from typing import Any, Optional

import jax
from flax import struct

from relucomp import _validation as v

__all__ = ["FitResult", "make_result"]

Params = list  # list of {"kernel", "bias"} layers


class FitResult(struct.PyTreeNode):
  """What :func:`fit` returns (a pytree: it stacks under ``jax.vmap``).

  Attributes:
    params: the trained MLP, ``depth + 1`` layers ``{"kernel", "bias"}``, on
      the raw scale of ``x`` and ``y``:
      ``mlp_apply(params, x[:, None])[:, 0]`` is the prediction.
    mse: final training MSE in the units of ``y`` (scalar array), computed
      from the loss on the normalised scale as ``(loss * yscale) * yscale``
      so that it is finite whenever the dtype can hold it; where ``y``'s
      range squared is outside the dtype's range (float32 targets of
      ``1e-30`` or ``1e25``) it under- or overflows: then read ``rmse``.
    rmse: the root of ``mse``, ``sqrt(loss) * yscale``: representable for
      any finite ``y`` (``None`` in files saved before it existed).
    history: the training loss before each step of both stages, shape
      ``(pretrain_steps + finetune_steps,)``, in the units of ``y``. Stage 1
      losses come from the closed form, stage 2 losses from the MLP.
    diverged: true if the loss on the normalised scale became NaN or inf
      (judged there, not in the units of ``y``; then ``mse`` is not a
      valid fit).
    pretrained: for two-stage methods, the stage-1 result on the
      normalised scale (``t = INSET + (1 - 2 INSET)(x - lo)/(hi - lo)``,
      ``z = (y - min y)/(max y - min y)``): a dict with
      ``peaks`` (``depth + 1``), ``scales`` (``depth``), ``slope`` and
      ``bias``; the stage-1 function is ``bias + compositional(t, peaks,
      scales, slope=slope)``. ``None`` for one-stage methods.
    snapshots: with ``track_pieces_every=k``, the MLP (raw scale) after
      ``0, k, 2k, ...`` steps, stacked along a leading axis; else ``None``.
    interval: ``(min(x), max(x))``, the interval mapped to ``[0, 1]``.
    y_range: ``(min(y), max(y))`` (``y`` is normalised by this range).
    sign: ``+1.0`` (convex: waves subtracted) or ``-1.0`` (concave: waves
      added) as used by the compositional methods.
    learning_rate: ``(stage 1, stage 2)`` learning rates of the default
      optimiser (stage 2 relative for the compositional methods; not used
      when a custom optimiser is given).
    method: the training setup (one of ``METHODS``).
    depth: the number of hidden layers.
    pretrain_steps: steps of stage 1.
    finetune_steps: steps of stage 2.
    track_pieces_every: the snapshot interval, or ``None``.
    curvature: the ``curvature`` argument of the run.
    optimizer: ``"adam"`` for the default optimiser, ``"custom"`` otherwise.
    n_params: number of weights and biases of ``params``.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> import relucomp
    >>> x = jnp.linspace(0.0, 2.0, 40)
    >>> res = relucomp.fit(x, jnp.exp(x), key=jax.random.key(0), depth=3,
    ...                    pretrain_steps=50, finetune_steps=50)
    >>> res.history.shape, res.interval.tolist(), res.method, res.n_params
    ((100,), [0.0, 2.0], 'enforced', 53)
    >>> sorted(res.pretrained), res.pretrained["peaks"].shape
    (['bias', 'peaks', 'scales', 'slope'], (4,))
  """
  params: Params
  mse: jax.Array
  history: jax.Array
  diverged: jax.Array
  pretrained: Optional[dict]
  snapshots: Optional[Params]
  interval: jax.Array
  y_range: jax.Array
  sign: jax.Array
  learning_rate: jax.Array
  rmse: Optional[jax.Array] = None
  method: str = struct.field(pytree_node=False, default="enforced")
  depth: int = struct.field(pytree_node=False, default=5)
  pretrain_steps: int = struct.field(pytree_node=False, default=0)
  finetune_steps: int = struct.field(pytree_node=False, default=0)
  track_pieces_every: Optional[int] = struct.field(pytree_node=False, default=None)
  curvature: str = struct.field(pytree_node=False, default="auto")
  optimizer: str = struct.field(pytree_node=False, default="adam")
  n_params: int = struct.field(pytree_node=False, default=0)


def make_result(out: dict, *, method: str, depth: int, n1: int, n2: int,
                track_pieces_every: Optional[int], curvature: str, optimizer: Any,
                n_params: int, stacklevel: int = 3) -> "FitResult":
  """Wraps a training loop's arrays in a :class:`FitResult` with its settings.

  Warns (eagerly, for an unbatched fit) when training diverged, at
  ``stacklevel`` (chosen so the warning points at the caller of :func:`fit`).
  """
  result = FitResult(**out, method=method, depth=depth, pretrain_steps=n1,
                     finetune_steps=n2, track_pieces_every=track_pieces_every,
                     curvature=curvature,
                     optimizer="adam" if optimizer is None else "custom",
                     n_params=n_params)
  d = v.concrete(result.diverged)
  if d is not None and d.ndim == 0 and bool(d):
    warnings.warn(f"training diverged (loss became NaN or inf) with method={method!r}; "
                  "result.diverged is set and result.mse is not a valid fit.",
                  RuntimeWarning, stacklevel=stacklevel)
    return result
  mse, rmse = v.concrete(result.mse), v.concrete(result.rmse)
  if (d is not None and d.ndim == 0 and mse is not None and rmse is not None
      and rmse > 0 and not 0 < mse < float("inf")):
    warnings.warn(f"the fit's MSE ({float(rmse):.3g} squared) is outside the range of "
                  f"{mse.dtype}, so result.mse is {float(mse)}; result.rmse holds it "
                  "(enable float64 for an mse in range).", UserWarning,
                  stacklevel=stacklevel)
  return result
