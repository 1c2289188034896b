"""Compositional networks beyond one convex variable: differences and a layer.

Two constructions build on :func:`relucomp.compositional_mlp`:

* :func:`difference_mlp` puts two compositional networks side by side in one
  8-wide plain MLP whose output is ``F_a(x) - F_b(x)``. With both amplitudes
  positive this is a difference of two convex functions, so any non-convex
  target with bounded curvature is in reach.
* :class:`CompositionalDense` is a ``flax.nnx`` layer. Each of its ``units``
  applies such a difference to a learned projection of the input, and the
  units are combined linearly. :func:`layer_to_mlp` turns a layer into the
  plain MLP it computes.

How a projection reaches ``[0, 1]``: compositional functions are defined on
``[0, 1]``, so unit ``j`` first clips its projection
``p_j = x @ P[:, j] + q_j`` with two ReLUs,

    z_j = clip(p_j, 0, 1) = relu(p_j) - relu(p_j - 1),

which is one hidden layer of two neurons per unit. The difference ``z_j`` is
linear, so it folds into the first layer of the two compositional networks;
nothing but ReLUs and affine maps is used and the layer is exactly a plain
ReLU MLP:

    layer 0   in -> 2 U     relu(p), relu(p - 1)           (blocks of 2 per unit)
    layer 1   2 U -> 8 U    first layers of F_a and F_b    (2 x 8 blocks)
    layer k   8 U -> 8 U    k = 2..depth                   (4 x 4 blocks)
    output    8 U -> out    last layers of F_a, F_b and the combination

Hidden neuron ``8 j + 4 n + i`` is neuron ``i`` (ordered as
:data:`relucomp.NEURONS`) of network ``n`` (0: ``F_a``, 1: ``F_b``) of unit
``j``; in layer 0 neuron ``2 j + i`` is ``relu(p_j - i)``.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.typing import ArrayLike

from relucomp import _network
from relucomp import _series
from relucomp import _validation as v

__all__ = ["CompositionalDense", "difference_mlp", "layer_to_mlp", "STAGES"]

STAGES = ("reparameterised", "free")
"""The two training stages of :class:`CompositionalDense`, in order.

Stage 1 (``"reparameterised"``) trains peaks and amplitudes with the law
fixing every other scale; stage 2 (``"free"``) trains the weights of the
4x4 blocks directly.

Example:
  >>> import relucomp
  >>> relucomp.STAGES[0], relucomp.STAGES[-1]
  ('reparameterised', 'free')
"""


def _block_diag(blocks: jax.Array) -> jax.Array:
  """``(B, r, c)`` blocks -> the ``(B r, B c)`` block-diagonal matrix."""
  b, r, c = blocks.shape
  eye = jnp.eye(b, dtype=blocks.dtype)
  return jnp.einsum("uv,uij->uivj", eye, blocks).reshape(b * r, b * c)


def difference_mlp(peaks_a: ArrayLike, scales_a: ArrayLike,
                   peaks_b: ArrayLike, scales_b: ArrayLike, *,
                   slope_a: ArrayLike = 1.0,
                   slope_b: ArrayLike = 0.0) -> list[dict[str, jax.Array]]:
  """One 8-wide plain MLP computing ``F_a(x) - F_b(x)`` on ``[0, 1]``.

  ``F_a = compositional(x, peaks_a, scales_a, slope=slope_a)`` and likewise
  ``F_b``. The two 4-wide networks of :func:`compositional_mlp` sit side by
  side: the first kernel is their first kernels concatenated, every hidden
  kernel is block-diagonal with their two 4 x 4 blocks, and the output layer
  subtracts the second network's output from the first's. Neurons ``0..3``
  of every hidden layer belong to ``F_a``, ``4..7`` to ``F_b``.

  With positive amplitudes (scales following :func:`enforced_scales`) both
  parts are convex and the result is a difference of convex functions; it
  has at most ``2^(d_a) + 2^(d_b)`` linear pieces.

  Args:
    peaks_a: peaks of ``F_a``, length ``d`` or ``d + 1``, entries in ``(0, 1)``.
    scales_a: scales of ``F_a``, length ``d >= 1``.
    peaks_b: peaks of ``F_b``, same depth ``d`` as ``F_a``.
    scales_b: scales of ``F_b``, length ``d``.
    slope_a: line coefficient of ``F_a``.
    slope_b: line coefficient of ``F_b``.

  Returns:
    ``d + 1`` layers ``{"kernel", "bias"}``: ``1 -> 8``, ``d - 1`` times
    ``8 -> 8``, ``8 -> 1``.

  Raises:
    ValueError: if the two depths differ, or on any input that
      :func:`compositional_mlp` rejects (naming ``peaks_a`` etc.).

  Example:
    >>> import jax.numpy as jnp
    >>> import relucomp
    >>> pa, pb = jnp.array([0.3, 0.6, 0.5]), jnp.array([0.7, 0.4, 0.5])
    >>> sa, sb = relucomp.enforced_scales(pa, 0.2), relucomp.enforced_scales(pb, 0.3)
    >>> params = relucomp.difference_mlp(pa, sa, pb, sb)
    >>> [layer["kernel"].shape for layer in params]
    [(1, 8), (8, 8), (8, 1)]
    >>> x = jnp.linspace(0, 1, 9)
    >>> closed = (relucomp.compositional(x, pa, sa)
    ...           - relucomp.compositional(x, pb, sb, slope=0.0))
    >>> bool(jnp.allclose(relucomp.mlp_apply(params, x[:, None])[:, 0], closed, atol=1e-6))
    True
  """
  parts = []
  for tag, peaks, scales, slope in (("a", peaks_a, scales_a, slope_a),
                                    ("b", peaks_b, scales_b, slope_b)):
    try:
      parts.append(_network.compositional_mlp(peaks, scales, slope=slope))
    except ValueError as err:
      raise ValueError(f"network {tag} (peaks_{tag}, scales_{tag}, slope_{tag}): "
                       f"{err}") from None
  net_a, net_b = parts
  if len(net_a) != len(net_b):
    raise ValueError(
        "scales_a and scales_b must have the same length (one depth for both "
        f"networks); got {len(net_a) - 1} and {len(net_b) - 1}.")
  dtype = jnp.result_type(net_a[0]["kernel"], net_b[0]["kernel"])
  layers = [{
      "kernel": jnp.concatenate([net_a[0]["kernel"], net_b[0]["kernel"]], axis=1).astype(dtype),
      "bias": jnp.concatenate([net_a[0]["bias"], net_b[0]["bias"]]).astype(dtype),
  }]
  for la, lb in zip(net_a[1:-1], net_b[1:-1]):
    layers.append({
        "kernel": _block_diag(jnp.stack([la["kernel"], lb["kernel"]]).astype(dtype)),
        "bias": jnp.concatenate([la["bias"], lb["bias"]]).astype(dtype),
    })
  layers.append({
      "kernel": jnp.concatenate([net_a[-1]["kernel"], -net_b[-1]["kernel"]]).astype(dtype),
      "bias": (net_a[-1]["bias"] - net_b[-1]["bias"]).astype(dtype),
  })
  return layers


def _positive_int(value: Any, name: str, minimum: int = 1) -> int:
  """``value`` as an ``int`` (Python or NumPy integers), at least ``minimum``."""
  if (isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer))
      or value < minimum):
    raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")
  return int(value)


def _positive_float(value: Any, name: str) -> float:
  """``value`` as a finite ``float > 0`` (a real number, not a bool or text)."""
  if isinstance(value, (bool, np.bool_, str, bytes)) or np.iscomplexobj(value):
    raise ValueError(f"{name} must be a finite number > 0; got {value!r}.")
  try:
    out = float(value)
  except (TypeError, ValueError):
    raise ValueError(f"{name} must be a finite number > 0; got {value!r}.") from None
  if not (math.isfinite(out) and out > 0):
    raise ValueError(f"{name} must be a finite number > 0; got {value!r}.")
  return out


def _initial_peak_bounds(peak_range: tuple[float, float]) -> tuple[float, float]:
  """Where the initial peaks are drawn: ``[0.25, 0.75]`` cut to the inner
  three quarters of ``peak_range`` (so their logits are finite)."""
  lo, hi = peak_range
  margin = (hi - lo) / 8
  return max(0.25, lo + margin), min(0.75, hi - margin)


def _law_scales(peaks: jax.Array, amplitudes: jax.Array) -> jax.Array:
  return jax.vmap(jax.vmap(_series.enforced_scales))(peaks, amplitudes)


@functools.partial(jax.jit, static_argnames=("peak_range",))
def _subnetworks(p: dict[str, jax.Array],
                 peak_range: tuple[float, float]) -> dict[str, jax.Array]:
  """Stage-1 parameters -> the free weights of every subnetwork (as blocks).

  Uses :func:`compositional_mlp` for each of the ``2 U`` networks; the sign
  of ``F_a - F_b`` goes into the output weights.
  """
  lo, hi = peak_range
  peaks = lo + (hi - lo) * jax.nn.sigmoid(p["peak_logits"])       # (U, 2, d+1)
  scales = _law_scales(peaks, jax.nn.softplus(p["amplitude_logits"]))
  slope = p["slope"]
  slopes = jnp.stack([slope, jnp.zeros_like(slope)], axis=1)       # (U, 2)
  nets = jax.vmap(jax.vmap(
      lambda a, s, m: _network.compositional_mlp(a, s, slope=m)))(peaks, scales, slopes)
  u = slope.shape[0]
  dtype = nets[0]["kernel"].dtype
  sign = jnp.array([1.0, -1.0], dtype)[None, :]                     # F_a - F_b
  if len(nets) > 2:
    hidden_k = jnp.stack([layer["kernel"].reshape(2 * u, 4, 4) for layer in nets[1:-1]])
    hidden_b = jnp.stack([layer["bias"].reshape(2 * u, 4) for layer in nets[1:-1]])
  else:
    hidden_k = jnp.zeros((0, 2 * u, 4, 4), dtype)
    hidden_b = jnp.zeros((0, 2 * u, 4), dtype)
  return {
      "first_kernel": nets[0]["kernel"][:, :, 0, :],                # (U, 2, 4)
      "first_bias": nets[0]["bias"],                                 # (U, 2, 4)
      "hidden_kernel": hidden_k,                                     # (d-1, 2U, 4, 4)
      "hidden_bias": hidden_b,                                       # (d-1, 2U, 4)
      "output_kernel": nets[-1]["kernel"][..., 0] * sign[..., None],  # (U, 2, 4)
      "output_bias": nets[-1]["bias"][..., 0] * sign,                # (U, 2)
  }


@jax.jit
def _forward(w: dict[str, jax.Array], x: jax.Array) -> jax.Array:
  """The layer's forward pass on ``x`` of shape (..., in), from its weights."""
  dtype = v.float_dtype(x, w["combine_kernel"])
  w = {k: a.astype(dtype) for k, a in w.items()}
  n_in, n_units = w["projection_kernel"].shape
  batch = x.shape[:-1]
  p = x.reshape(math.prod(batch), n_in).astype(dtype) @ w["projection_kernel"] + w["projection_bias"]
  z = jax.nn.relu(p) - jax.nn.relu(p - 1)                           # clip to [0, 1]
  h = jax.nn.relu(z[:, :, None, None] * w["first_kernel"] + w["first_bias"])
  h = h.reshape(h.shape[0], 2 * n_units, 4)
  for k in range(w["hidden_kernel"].shape[0]):
    h = jax.nn.relu(jnp.einsum("nbi,bij->nbj", h, w["hidden_kernel"][k])
                    + w["hidden_bias"][k])
  h = h.reshape(h.shape[0], n_units, 2, 4)
  phi = (jnp.einsum("nuki,uki->nu", h, w["output_kernel"])
         + jnp.sum(w["output_bias"], axis=1))
  y = phi @ w["combine_kernel"] + w["combine_bias"]
  return y.reshape(*batch, y.shape[-1])


@functools.partial(jax.jit, static_argnums=tuple(range(1, 9)))
def _init_reparam(key: jax.Array, in_features: int, units: int, out_features: int,
                  depth: int, dtype: Any, peak_range: tuple[float, float],
                  amplitude: float, projection_scale: float) -> dict[str, jax.Array]:
  """Initial stage-1 parameters (see :class:`CompositionalDense`)."""
  lo, hi = peak_range
  k_proj, k_peak, k_slope, k_comb = jax.random.split(key, 4)
  first, last = _initial_peak_bounds(peak_range)
  frac = jax.random.uniform(k_peak, (units, 2, depth + 1), dtype,
                            (first - lo) / (hi - lo), (last - lo) / (hi - lo))
  amp = jnp.asarray(amplitude, dtype)
  return {
      "projection_kernel": projection_scale / math.sqrt(in_features)
                           * jax.random.normal(k_proj, (in_features, units), dtype),
      "projection_bias": jnp.full((units,), 0.5, dtype),
      "peak_logits": jnp.log(frac) - jnp.log1p(-frac),
      "amplitude_logits": jnp.full((units, 2), amp + jnp.log(-jnp.expm1(-amp)), dtype),
      "slope": jax.random.normal(k_slope, (units,), dtype),
      "combine_kernel": jax.random.normal(k_comb, (units, out_features), dtype)
                        / math.sqrt(units),
      "combine_bias": jnp.zeros((out_features,), dtype),
  }


class CompositionalDense(nnx.Module):
  """A dense layer whose units are learned 1-D compositional functions.

  Unit ``j`` computes ``phi_j(z_j)`` with ``z_j = clip(x @ P[:, j] + q_j, 0,
  1)`` (two ReLUs, see the module notes) and

      phi_j(z) = F_{j,a}(z) - F_{j,b}(z),
      F_{j,a}(z) = slope_j z - sum_i s_{j,a,i} W_i(z; peaks_{j,a}),
      F_{j,b}(z) =           - sum_i s_{j,b,i} W_i(z; peaks_{j,b}),

  two compositional networks of depth ``depth`` (so ``phi_j`` may be
  non-convex). The layer returns ``sum_j phi_j(z_j) C[j, :] + c``. It is a
  plain ReLU MLP with ``depth + 1`` hidden layers whose hidden weights are
  block-diagonal (4 x 4 blocks between the compositional layers);
  :func:`layer_to_mlp` writes it out.

  **Stages.** ``stage`` is ``"reparameterised"`` (stage 1) or ``"free"``
  (stage 2). In both, the projection ``P, q`` and the combination ``C, c``
  are ordinary parameters, and the clip is the fixed pair of ReLUs above.

  * ``"reparameterised"``: each subnetwork is given by its peaks and
    amplitude. ``peak_logits`` (shape ``(units, 2, depth + 1)``) map into
    ``(lo, hi) = peak_range`` by ``lo + (hi - lo) * sigmoid(.)``;
    ``amplitude_logits`` (shape ``(units, 2)``) map to the amplitudes
    ``s_1 = softplus(.) > 0``, so ``F_a`` and ``F_b`` are both convex and
    ``phi_j`` is a difference of convex functions; ``slope`` (shape
    ``(units,)``) is the line of ``F_a``. Every other scale follows the law
    (:func:`enforced_scales`); the last of the ``depth + 1`` peaks of each
    network only sets the last ratio and is trained like the others. The
    weights are built by :func:`compositional_mlp`, so each subnetwork has
    exactly ``2^depth`` linear pieces on ``[0, 1]`` all through stage 1.
  * ``"free"``: the weights of the ``2 units`` subnetworks (``1 -> 4``,
    ``depth - 1`` layers ``4 -> 4``, ``4 -> 1`` each; see :meth:`weights`)
    are parameters and train without constraint; the block structure stays.

  Call :meth:`set_stage` with ``"free"`` to switch: it sets the free weights
  to the current stage-1 subnetworks (the output does not change) and
  removes the stage-1 parameters, so build a new ``nnx.Optimizer``
  afterwards. Switch outside of ``nnx.jit``. A layer made with
  ``stage="free"`` starts from the construction at its initial peaks.

  **Initialisation.** ``P ~ N(0, projection_scale^2 / in_features)`` and
  ``q = 1/2``, so inputs with unit variance give projections centred in
  ``[0, 1]`` with standard deviation about ``projection_scale``; peaks
  uniform in ``[0.25, 0.75]``, cut to the inner three quarters of
  ``peak_range`` when that is narrower (``(0.3, 0.35)``: ``[0.30625,
  0.34375]``); amplitudes ``amplitude`` for both networks;
  ``slope ~ N(0, 1)``; ``C`` LeCun-normal, ``c = 0``.

  Args:
    in_features: size of the last axis of the input.
    out_features: size of the last axis of the output.
    depth: depth ``d >= 1`` of every compositional network (``2^d`` pieces).
    rngs: ``nnx.Rngs`` with a ``params`` stream.
    units: number of unit functions; defaults to ``out_features``.
    stage: ``"reparameterised"`` (default) or ``"free"``.
    peak_range: ``(lo, hi)`` with ``0 < lo < hi < 1``; peaks stay inside.
    amplitude: initial positive amplitude of every network.
    projection_scale: standard deviation of the initial projections for
      inputs of unit variance.
    param_dtype: dtype of the parameters (``jnp.float64`` needs
      ``jax_enable_x64``).

  Raises:
    ValueError: on sizes that are not positive integers (Python or NumPy),
      ``rngs`` that is not an ``nnx.Rngs``, a ``param_dtype`` that is not a
      float dtype, an unknown stage, a bad ``peak_range`` or a non-positive
      ``amplitude`` or ``projection_scale``; when called, on
      input whose last axis is not ``in_features`` or that holds NaN or inf
      (checked on concrete values).

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from flax import nnx
    >>> import relucomp
    >>> layer = relucomp.CompositionalDense(3, 2, depth=3, rngs=nnx.Rngs(0))
    >>> x = jax.random.normal(jax.random.key(1), (5, 3))
    >>> layer(x).shape
    (5, 2)
    >>> y1 = layer(x)
    >>> layer.set_stage("free")
    >>> bool(jnp.allclose(layer(x), y1, atol=1e-5))
    True
    >>> params = relucomp.layer_to_mlp(layer)
    >>> bool(jnp.allclose(relucomp.mlp_apply(params, x), y1, atol=1e-5))
    True
  """

  def __init__(self, in_features: int, out_features: int, *, depth: int,
               rngs: nnx.Rngs, units: int | None = None,
               stage: str = "reparameterised",
               peak_range: tuple[float, float] = (0.05, 0.95),
               amplitude: float = 0.1, projection_scale: float = 0.25,
               param_dtype: Any = jnp.float32):
    if not isinstance(rngs, nnx.Rngs):
      raise ValueError(f"rngs must be an nnx.Rngs (e.g. nnx.Rngs(0)); got {rngs!r}.")
    try:
      dtype = jnp.dtype(param_dtype)
    except TypeError:
      dtype = None
    if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
      raise ValueError(f"param_dtype must be a float dtype; got {param_dtype!r}.")
    self.in_features = _positive_int(in_features, "in_features")
    self.out_features = _positive_int(out_features, "out_features")
    self.depth = _positive_int(depth, "depth")
    self.units = _positive_int(out_features if units is None else units, "units")
    if not isinstance(stage, str) or stage not in STAGES:
      raise ValueError(f"stage must be one of {STAGES}; got {stage!r}.")
    try:
      if np.iscomplexobj(peak_range) or isinstance(peak_range, (str, bytes)):
        raise TypeError
      lo, hi = (float(b) for b in peak_range)
    except (TypeError, ValueError):
      raise ValueError(f"peak_range must be a pair (lo, hi); got {peak_range!r}.") from None
    if not 0.0 < lo < hi < 1.0:
      raise ValueError(f"peak_range must satisfy 0 < lo < hi < 1; got {peak_range!r}.")
    amplitude = _positive_float(amplitude, "amplitude")
    projection_scale = _positive_float(projection_scale, "projection_scale")
    self.peak_range = (lo, hi)
    self.param_dtype = param_dtype
    self.stage = "reparameterised"

    values = _init_reparam(rngs.params(), self.in_features, self.units,
                           self.out_features, self.depth, jnp.dtype(param_dtype),
                           self.peak_range, float(amplitude), float(projection_scale))
    for name in self._SHARED + self._REPARAM:
      setattr(self, name, nnx.Param(values[name]))
    if stage == "free":
      self.set_stage("free")

  # -- stage 1 -------------------------------------------------------------

  def peaks(self) -> jax.Array:
    """The peaks, shape ``(units, 2, depth + 1)``, each in ``peak_range``.

    Only in the ``"reparameterised"`` stage.
    """
    self._require_stage("reparameterised", "peaks")
    lo, hi = self.peak_range
    return lo + (hi - lo) * jax.nn.sigmoid(self.peak_logits[...])

  def amplitudes(self) -> jax.Array:
    """The positive amplitudes ``s_1``, shape ``(units, 2)`` (stage 1 only)."""
    self._require_stage("reparameterised", "amplitudes")
    return jax.nn.softplus(self.amplitude_logits[...])

  def scales(self) -> jax.Array:
    """Law-following scales ``s_1..s_d``, shape ``(units, 2, depth)``."""
    return _law_scales(self.peaks(), self.amplitudes())

  def _require_stage(self, stage: str, what: str) -> None:
    if self.stage != stage:
      raise ValueError(f"{what} exists only in the {stage!r} stage; this layer "
                       f"is in the {self.stage!r} stage.")

  #: Parameters of both stages: the projection and the combination.
  _SHARED = ("projection_kernel", "projection_bias", "combine_kernel", "combine_bias")
  #: Stage-1 parameters of the subnetworks.
  _REPARAM = ("peak_logits", "amplitude_logits", "slope")
  #: Stage-2 (free) weights of the subnetworks.
  _FREE = ("first_kernel", "first_bias", "hidden_kernel", "hidden_bias",
           "output_kernel", "output_bias")

  def set_stage(self, stage: str) -> None:
    """Switches the layer to ``stage`` (only ``"reparameterised" -> "free"``).

    The free weights are built from the current stage-1 parameters, so the
    layer computes the same function before and after. Free weights do not
    in general come from peaks, so there is no way back.

    Raises:
      ValueError: on an unknown stage or a switch back to stage 1.
    """
    if not isinstance(stage, str) or stage not in STAGES:
      raise ValueError(f"stage must be one of {STAGES}; got {stage!r}.")
    if stage == self.stage:
      return
    if stage == "reparameterised":
      raise ValueError("stage cannot go back from 'free' to 'reparameterised': "
                       "free weights are not in general given by peaks.")
    weights = _subnetworks({n: getattr(self, n)[...] for n in self._REPARAM},
                           self.peak_range)
    for name in self._REPARAM:
      delattr(self, name)
    for name in self._FREE:
      setattr(self, name, nnx.Param(weights[name].astype(self.param_dtype)))
    self.stage = "free"

  def weights(self) -> dict[str, jax.Array]:
    """The weights of the layer as blocks, in either stage.

    Keys: ``projection_kernel (in, U)``, ``projection_bias (U,)``, the
    subnetworks' ``first_kernel (U, 2, 4)``, ``first_bias (U, 2, 4)``,
    ``hidden_kernel (depth - 1, 2 U, 4, 4)``, ``hidden_bias (depth - 1, 2 U,
    4)``, ``output_kernel (U, 2, 4)``, ``output_bias (U, 2)`` (``F_b``'s
    sign included), and ``combine_kernel (U, out)``, ``combine_bias (out,)``.
    In stage 1 the subnetwork weights are computed from the peaks.
    """
    w = {name: getattr(self, name)[...] for name in self._SHARED}
    if self.stage == "reparameterised":
      w.update(_subnetworks({n: getattr(self, n)[...] for n in self._REPARAM},
                            self.peak_range))
    else:
      w.update({name: getattr(self, name)[...] for name in self._FREE})
    return w

  # -- forward -------------------------------------------------------------

  def __call__(self, x: ArrayLike) -> jax.Array:
    """Applies the layer to ``x`` of shape ``(..., in_features)``."""
    x = v.array(x, "x")
    if x.ndim < 1 or x.shape[-1] != self.in_features:
      raise ValueError(
          f"x must have shape (..., in_features) with in_features = "
          f"{self.in_features}; got shape {x.shape}.")
    v.check_finite(x, "x")
    return _forward(self.weights(), x)


def layer_to_mlp(layer: CompositionalDense) -> list[dict[str, jax.Array]]:
  """The plain ReLU MLP that ``layer`` computes.

  Works in either stage. The result has ``depth + 2`` layers
  (``in -> 2 U -> 8 U -> ... -> 8 U -> out``) in the format of
  :func:`mlp_apply`, with the hidden kernels written out block-diagonally,
  so every tool for plain MLPs applies to the layer.

  Args:
    layer: a :class:`CompositionalDense`.

  Returns:
    A list of ``{"kernel": (n_in, n_out), "bias": (n_out,)}`` dicts such
    that ``mlp_apply(params, x) == layer(x)`` (up to rounding).

  Raises:
    ValueError: if ``layer`` is not a :class:`CompositionalDense`.

  Example:
    >>> from flax import nnx
    >>> import relucomp
    >>> layer = relucomp.CompositionalDense(4, 3, depth=2, units=5, rngs=nnx.Rngs(0))
    >>> [p["kernel"].shape for p in relucomp.layer_to_mlp(layer)]
    [(4, 10), (10, 40), (40, 40), (40, 3)]
  """
  if not isinstance(layer, CompositionalDense):
    raise ValueError(
        f"layer must be a CompositionalDense; got {type(layer).__name__}.")
  w = layer.weights()
  u = layer.units
  proj, q = w["projection_kernel"], w["projection_bias"]
  first = w["first_kernel"].reshape(u, 8)            # the 8 first-layer weights on z
  out = (w["output_kernel"].reshape(u, 8)[:, :, None]
         * w["combine_kernel"][:, None, :]).reshape(8 * u, -1)
  params = [
      # relu(p), relu(p - 1) per unit
      {"kernel": jnp.stack([proj, proj], axis=-1).reshape(layer.in_features, 2 * u),
       "bias": jnp.stack([q, q - 1], axis=-1).reshape(2 * u)},
      # z = relu(p) - relu(p - 1) enters both subnetworks' first layers
      {"kernel": _block_diag(jnp.stack([first, -first], axis=1)),
       "bias": w["first_bias"].reshape(8 * u)},
  ]
  for k in range(layer.depth - 1):
    params.append({"kernel": _block_diag(w["hidden_kernel"][k]),
                   "bias": w["hidden_bias"][k].reshape(8 * u)})
  params.append({"kernel": out,
                 "bias": jnp.sum(w["output_bias"], axis=1) @ w["combine_kernel"]
                         + w["combine_bias"]})
  return params


def compose_mlps(first: Sequence[dict[str, jax.Array]],
                 second: Sequence[dict[str, jax.Array]]) -> list[dict[str, jax.Array]]:
  """One plain MLP computing ``second(first(x))``.

  The linear output layer of ``first`` and the first layer of ``second``
  merge into one layer (no activation sits between them).
  """
  first, second = list(first), list(second)
  last, nxt = first[-1], second[0]
  merged = {"kernel": last["kernel"] @ nxt["kernel"],
            "bias": last["bias"] @ nxt["kernel"] + nxt["bias"]}
  return first[:-1] + [merged] + second[1:]
