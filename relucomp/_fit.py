"""The front door: :func:`fit` checks its arguments and dispatches.

Each method belongs to one model family (a module ``_fit_*``), which turns
the checked data and settings into a :class:`relucomp._engine.Trainer`; the
shared loop :func:`relucomp._engine.train` trains it and
:func:`relucomp._result.make_result` wraps the arrays. Adding a method is
one new family module and one line of ``FAMILIES``.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import jax
from jax.typing import ArrayLike

from relucomp import _engine as engine
from relucomp import _fit_convex
from relucomp import _fit_dc
from relucomp import _fit_dense
from relucomp import _fit_several
from relucomp._result import FitResult, make_result

__all__ = ["fit", "FitResult", "FAMILIES", "METHODS", "ALL_METHODS"]

#: Method -> (family module, which inputs it takes: "one", "several", "any").
FAMILIES = {
    "enforced": (_fit_convex, "one"),
    "free_scales": (_fit_convex, "one"),
    "no_pretrain": (_fit_convex, "one"),
    "kaiming": (_fit_dense, "any"),
    "raai": (_fit_dense, "one"),
    "dc": (_fit_dc, "one"),
    "compositional": (_fit_several, "several"),
}
#: The training setups of the paper (one convex or concave input).
METHODS = _fit_convex.METHODS + _fit_dense.METHODS
#: Every method :func:`fit` accepts.
ALL_METHODS = tuple(FAMILIES)


def _check_settings(method, curvature, depth, pretrain_steps, finetune_steps,
                    track_pieces_every, width):
  if not isinstance(method, str) or method not in FAMILIES:
    raise ValueError(f"method must be one of {ALL_METHODS}; got {method!r}.")
  if not isinstance(curvature, str) or curvature not in _fit_convex.CURVATURES:
    raise ValueError(f"curvature must be one of {_fit_convex.CURVATURES}; "
                     f"got {curvature!r}.")
  depth = engine.check_int(depth, "depth", 1)
  # None: the family's default for its optimisers (resolved in fit).
  n1 = None if pretrain_steps is None else engine.check_int(pretrain_steps, "pretrain_steps", 0)
  n2 = None if finetune_steps is None else engine.check_int(finetune_steps, "finetune_steps", 0)
  if n1 is not None and n2 is not None and n1 + n2 < 1:
    raise ValueError("pretrain_steps + finetune_steps must be at least 1; got 0.")
  if track_pieces_every is not None:
    track_pieces_every = engine.check_int(track_pieces_every, "track_pieces_every", 1)
  if width is not None:
    if method not in ("compositional", "kaiming"):
      raise ValueError(f"width applies to methods 'compositional' and 'kaiming'; got "
                       f"method={method!r}.")
    width = engine.check_int(width, "width", 1)
  return depth, n1, n2, track_pieces_every, width


def _default_width(method: str, x: jax.Array, depth: int, width: Optional[int]) -> Any:
  """The dense baseline's width: 4 for one input, else the smallest with at
  least as many parameters as ``"compositional"`` at the same depth."""
  if width is not None or method != "kaiming":
    return width
  if x.ndim == 1:
    return _fit_dense.DEFAULT_WIDTH
  n = _fit_several.compositional_param_count(x.shape[1], width=_fit_several.DEFAULT_WIDTH,
                                             depth=depth)
  return _fit_dense.dense_width_for(x.shape[1], depth, n)


def fit(x: ArrayLike, y: ArrayLike, *, key: jax.Array, method: str = "enforced",
        depth: int = 5, pretrain_steps: Optional[int] = None,
        finetune_steps: Optional[int] = None,
        learning_rate: Union[None, float, Sequence[float]] = None,
        optimizer: Any = None, curvature: str = "auto",
        track_pieces_every: Optional[int] = None,
        width: Optional[int] = None) -> FitResult:
  """Fits a scalar function with a ReLU MLP that uses its depth.

  The methods (``x`` of shape ``(n,)`` unless said otherwise):

  | method | model | stage 1 | stage 2 |
  |---|---|---|---|
  | ``"enforced"`` | 4-wide compositional MLP, ``2^depth`` pieces | peaks, amplitude, line; scales by the law | free weights |
  | ``"free_scales"`` | as ``"enforced"`` | peaks, every scale free | free weights |
  | ``"no_pretrain"`` | as ``"enforced"`` | none | free weights from the ``"enforced"`` start |
  | ``"kaiming"`` | dense MLP, PyTorch init; any ``(n, k)`` | none | all weights |
  | ``"raai"`` | 4-wide MLP, RAAI init | none | all weights |
  | ``"dc"`` | difference of two compositional nets, 8 wide | both nets' peaks and amplitudes | free weights |
  | ``"compositional"`` | two ``CompositionalDense`` layers; ``x (n, k)``, ``k >= 2`` | reparameterised | free (blocks kept) |

  ``x`` is mapped affinely (1-D onto ``[INSET, 1 - INSET]`` with ``INSET =
  2**-10``: every wave has a kink at exactly 0 and 1; several inputs
  standardised per column) and ``y`` by its range onto ``[0, 1]``; the maps
  are folded into the first and last layers of ``result.params``, which
  therefore acts on raw ``x`` and predicts raw ``y``. The losses are taken
  on the normalised scale (``diverged`` is judged there) and reported in the
  units of ``y`` (``mse``, ``history``). One-stage methods train for
  ``pretrain_steps + finetune_steps`` steps.

  The compositional methods start from peaks drawn from ``(0.3, 0.7)`` and
  the amplitude, line and bias by least squares; ``"enforced"``,
  ``"free_scales"`` and ``"no_pretrain"`` start from identical networks for
  the same key. In stage 1 a peak is ``0.01 + 0.98 sigmoid(theta)`` and the
  amplitude ``sign * exp(log_amp)`` (the sign from the curvature), so
  ``"enforced"`` has exactly ``2^depth`` pieces all through stage 1. Stage 2
  starts from the stage-1 network with balanced neurons
  (:func:`relucomp.balance_neurons`).

  Optimisation: each family has default optimisers (see the concepts page);
  ``optimizer`` replaces them by any optax ``GradientTransformation`` or a
  pair ``(stage 1, stage 2)`` in which ``None`` keeps that stage's default.
  Every stage gets a fresh optimiser state; extra-argument transformations
  get what they take (``optax.lbfgs()``: the loss and a value function;
  :func:`relucomp.levenberg_marquardt`: the residuals on the normalised
  scale). All steps run in ``lax.scan`` inside one ``jax.jit``; ``fit`` is
  pure in its array arguments, so ``jax.vmap`` over ``key`` or over a batch
  of ``y`` trains many models at once (the input checks and warnings then
  only run on concrete values).

  Args:
    x: inputs, shape ``(n,)`` or (``"compositional"``, ``"kaiming"``)
      ``(n, k)``; finite, every feature with two distinct values.
    y: targets, shape ``(n,)``, finite.
    key: one PRNG key (starting peaks or random weights).
    method: one of the methods above.
    depth: number of hidden layers of each compositional network (``2^depth``
      pieces), or of the dense MLP; ``>= 1``.
    pretrain_steps: steps of stage 1, ``>= 0``; ``None``: the default of
      the method's default optimisers (second-order: 20 for the 1-D
      compositional methods, 1000 for ``"dc"``; Adam: 1000).
    finetune_steps: steps of stage 2, ``>= 0``; ``None``: the default
      (second-order: 70 for the 1-D compositional methods, 100 for ``"dc"``;
      Adam: 1000).
    learning_rate: ``None`` (the family's default), a positive number or a
      pair ``(stage 1, stage 2)``, used by the default optimisers.
    optimizer: ``None`` (the family's default: second-order steps for
      networks of at most 500 weights, else Adam), ``"adam"`` (Adam in
      both stages, the paper's scheme), an optax ``GradientTransformation``
      or a pair ``(stage 1, stage 2)`` of them (``None`` entries keep that
      stage's Adam default).
    curvature: ``"auto"`` (detected; warns if the data are neither convex
      nor concave), ``"convex"`` or ``"concave"``: the sign of the waves of
      the convex methods.
    track_pieces_every: ``None`` or ``k >= 1``: keep the MLP every ``k``
      steps in ``result.snapshots`` (``x`` with at most two features), for
      :func:`relucomp.pieces_history`.
    width: units per layer for ``"compositional"`` (default 4); hidden width
      for ``"kaiming"`` (default 4 for one input, matched parameters for
      several).

  Returns:
    A :class:`FitResult`.

  Raises:
    ValueError: on ``x``/``y`` of other shapes or lengths, fewer than 3
      points, non-finite values, a constant feature, a ``key`` that is not
      one PRNG key, ``depth < 1``, negative steps, an unknown ``method`` or
      ``curvature``, a non-positive learning rate, an ``optimizer`` that is
      not ``None``, an optax transformation or a pair of them, a bad
      ``track_pieces_every`` or a ``width`` the method does not take.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> import relucomp
    >>> x = jnp.linspace(-1.0, 2.0, 50)
    >>> res = relucomp.fit(x, x ** 2, key=jax.random.key(0), depth=3,
    ...                    pretrain_steps=100, finetune_steps=100)
    >>> pred = relucomp.mlp_apply(res.params, x[:, None])[:, 0]
    >>> bool(jnp.allclose(jnp.mean((pred - x ** 2) ** 2), res.mse, rtol=1e-3))
    True
    >>> bool(res.mse < 0.1 * res.history[0]), bool(res.diverged), res.n_params
    (True, False, 53)
  """
  depth, n1, n2, track, width = _check_settings(
      method, curvature, depth, pretrain_steps, finetune_steps, track_pieces_every, width)
  family, features = FAMILIES[method]
  key = engine.check_key(key)
  x, y = engine.check_data(x, y, features=features, method=method)
  if track is not None and x.ndim == 2 and x.shape[1] > 2:
    raise ValueError(
        "track_pieces_every needs one or two input features (pieces and regions are "
        f"counted exactly only in 1-D and 2-D); x has {x.shape[1]} features.")
  trainer, options, n_params, default_lr = family.setup(
      x, y, method=method, depth=depth, width=_default_width(method, x, depth, width),
      curvature=curvature)
  lr, optimizer = engine.check_lr_optimizer(
      default_lr if learning_rate is None else learning_rate, optimizer)
  if hasattr(family, "configure"):      # second-order default for small networks
    trainer = family.configure(trainer, optimizer)
  steps = family.default_steps(trainer) if hasattr(family, "default_steps") else (1000, 1000)
  n1 = steps[0] if n1 is None else n1
  n2 = steps[1] if n2 is None else n2
  if n1 + n2 < 1:
    raise ValueError("pretrain_steps + finetune_steps must be at least 1; got 0.")
  out = engine.train(trainer, x, y, key, lr.astype(x.dtype), options, n1=n1, n2=n2,
                     optimizer=optimizer, track=track)
  return make_result(out, method=method, depth=depth, n1=n1, n2=n2,
                     track_pieces_every=track, curvature=curvature,
                     optimizer=None if isinstance(optimizer, str) else optimizer,
                     n_params=n_params)
