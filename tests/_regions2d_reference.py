"""A NumPy reference for the 2-D enumeration: polygons cut one line at a time.

Independent of relucomp (it calls nothing from it): plain vectorised NumPy,
breadth first over all polygons, with the tie and tolerance rules that
:func:`relucomp.regions_2d` documents. Each round cuts every polygon by its
own next candidate neuron (one strictly positive at one vertex of the
polygon the layer started from and strictly negative at another), evaluated
from the polygon's maps at its current vertices and snapped to zero below
``rtol * (|a_0 y_0| + |a_1 y_1| + |b| + sum_k |W_kj h_k| + |b_j|)`` (the last
terms, the previous layer's outputs ``h_k`` at the vertex times the kernel,
from the second layer on); a neuron is active on a cell iff
strictly positive at one of its vertices. The maps of the next layer are one
matrix product per layer. Slow (a round per neuron), for small networks.
"""

from __future__ import annotations

import numpy as np


def _values(v: np.ndarray, p: np.ndarray, rtol: float, terms=None) -> np.ndarray:
  """Snapped values ``(n, K, m)`` at vertices ``v`` ``(n, K, 2)`` of maps
  ``p`` ``(n, 3, m)``; ``terms(v)`` gives the sums ``sum_k |W_kj h_k| +
  |b_j|`` of the previous layer's terms at the vertices (``None`` in the
  first layer)."""
  a0, a1, b = p[:, 0:1, :], p[:, 1:2, :], p[:, 2:3, :]
  y0, y1 = v[..., 0:1], v[..., 1:2]
  z = y0 * a0 + y1 * a1 + b
  scale = np.abs(y0 * a0) + np.abs(y1 * a1) + np.abs(b)
  if terms is not None:
    scale = scale + terms(v)
  z[np.abs(z) <= rtol * scale] = 0.0
  return z


def _previous_terms(masked, kernel, bias):
  """``terms(v, rows, cols)`` for :func:`_values`: at vertices ``v`` of the
  cells ``rows``, ``sum_k |W_kj h_k(v)| + |b_j|`` for the neurons ``cols``
  (``(s, K, len(cols))``; with ``paired``, column ``cols[i]`` for row ``i``
  only, ``(s, K)``), with ``h_k`` the previous layer's maps ``masked``
  ``(cells, 3, n)`` of each cell (zero where inactive)."""
  def terms(v, rows, cols, paired=False):
    p = masked[rows]                                       # (s, 3, n)
    h = np.abs(v[..., 0:1] * p[:, None, 0, :] + v[..., 1:2] * p[:, None, 1, :]
               + p[:, None, 2, :])                         # (s, K, n)
    if paired:
      return (np.einsum("skn,ns->sk", h, np.abs(kernel[:, cols]))
              + np.abs(bias[cols])[:, None])
    return h @ np.abs(kernel[:, cols]) + np.abs(bias[cols])
  return terms


def _next_true(mask: np.ndarray) -> np.ndarray:
  """``out[r, k]``: the smallest ``j >= k`` with ``mask[r, j]``, else ``m``."""
  n, m = mask.shape
  index = np.where(mask, np.arange(m)[None, :], m)
  out = np.full((n, m + 1), m, dtype=np.int64)
  out[:, :m] = np.minimum.accumulate(index[:, ::-1], axis=1)[:, ::-1]
  return out


def _cut(v: np.ndarray, cnt: np.ndarray, z: np.ndarray):
  """Splits convex polygons ``v`` ``(s, K, 2)`` (``cnt`` vertices each) along
  the zero line of values ``z`` ``(s, K)``: the parts ``z >= 0`` and ``z <=
  0``, vertices in the same cyclic order, padded to a common size."""
  s, k = z.shape
  idx = np.arange(k)
  valid = idx < cnt[:, None]
  nxt = (idx[None, :] + 1) % cnt[:, None]
  z_next = np.take_along_axis(z, nxt, axis=1)
  v_next = np.take_along_axis(v, nxt[..., None], axis=1)
  cross = valid & (((z > 0) & (z_next < 0)) | ((z < 0) & (z_next > 0)))
  with np.errstate(divide="ignore", invalid="ignore"):
    t = np.where(cross, z / (z - z_next), 0.0)
  point = v + t[..., None] * (v_next - v)
  slots = np.stack([v, point], axis=2).reshape(s, 2 * k, 2)
  parts = []
  for keep in (valid & (z >= 0), valid & (z <= 0)):
    emit = np.stack([keep, cross], axis=2).reshape(s, 2 * k)
    count = emit.sum(axis=1)
    pos = np.cumsum(emit, axis=1) - 1
    rows, cols = np.nonzero(emit)
    parts.append((rows, pos[rows, cols], slots[rows, cols], count))
  size = max(k, int(parts[0][3].max()), int(parts[1][3].max()))
  out = []
  for rows, pos, points, count in parts:
    child = np.zeros((s, size, 2))
    child[rows, pos] = points
    out.extend([child, count])
  return tuple(out)


def _pad(v: np.ndarray, size: int) -> np.ndarray:
  if v.shape[1] >= size:
    return v
  out = np.zeros((v.shape[0], size, 2))
  out[:, :v.shape[1]] = v
  return out


def cut_layer(v: np.ndarray, cnt: np.ndarray, p: np.ndarray, rtol: float, terms=None):
  """The cells of one layer.

  Args:
    v: polygons' vertices ``(n, K, 2)``, ``cnt`` their counts.
    p: the layer's pre-activation maps per polygon ``(n, 3, m)``.
    rtol: the zero tolerance.
    terms: ``terms(v, polygons, neurons)``, the sums of the absolute values
      of the previous layer's terms (see :func:`_previous_terms`), or
      ``None`` for the first layer.

  Returns:
    ``(v, cnt, src, active)``: the cells, their source polygons and the
    layer's activation pattern on them.
  """
  n, m = p.shape[0], p.shape[2]
  valid = (np.arange(v.shape[1]) < cnt[:, None])[..., None]
  z = _values(v, p, rtol, None if terms is None else
              (lambda w: terms(w, np.arange(n), np.arange(m))))
  act = np.any((z > 0) & valid, axis=1)
  upcoming = _next_true(act & np.any((z < 0) & valid, axis=1))
  src = np.arange(n)
  ptr = np.zeros(n, dtype=np.int64)
  while True:
    nxt = upcoming[src[:n], ptr[:n]]
    idx = np.flatnonzero(nxt < m)
    if idx.size == 0:
      break
    neuron = nxt[idx]
    ptr[idx] = neuron + 1
    zi = _values(v[idx], p[src[idx], :, neuron][:, :, None], rtol, None if terms is None else
                 (lambda w: terms(w, src[idx], neuron, paired=True)[..., None]))[..., 0]
    valid = np.arange(v.shape[1]) < cnt[idx, None]
    pos = np.any((zi > 0) & valid, axis=1)
    cut = pos & np.any((zi < 0) & valid, axis=1)
    act[idx, neuron] = pos
    idx, zi, neuron = idx[cut], zi[cut], neuron[cut]
    if idx.size == 0:
      continue
    v_pos, c_pos, v_neg, c_neg = _cut(v[idx], cnt[idx], zi)
    size = max(v.shape[1], v_pos.shape[1])
    if n + idx.size > v.shape[0] or size > v.shape[1]:
      capacity = max(2 * v.shape[0], n + idx.size)
      grown = np.zeros((capacity, size, 2))
      grown[:n, :v.shape[1]] = v[:n]
      v = grown
      cnt, src, ptr = (np.concatenate([a[:n], np.zeros(capacity - n, dtype=a.dtype)])
                       for a in (cnt, src, ptr))
      act = np.concatenate([act[:n], np.zeros((capacity - n, m), dtype=bool)])
    v[idx] = _pad(v_pos, v.shape[1])
    cnt[idx] = c_pos
    v[n:n + idx.size] = _pad(v_neg, v.shape[1])
    cnt[n:n + idx.size] = c_neg
    src[n:n + idx.size] = src[idx]
    ptr[n:n + idx.size] = ptr[idx]
    act[n:n + idx.size] = act[idx]
    act[n + np.arange(idx.size), neuron] = False      # the side z <= 0
    n += idx.size
  return v[:n], cnt[:n], src[:n], act[:n]


def regions_2d(params, lo, hi, rtol: float):
  """The regions of a two-input MLP on the rectangle ``[lo, hi]``.

  Returns:
    ``(vertices, patterns, A, c)``: one ``(k, 2)`` array per region, the
    patterns of all hidden layers side by side ``(count, total)`` and the
    affine maps ``f(y) = A[r] @ y + c[r]``.
  """
  layers = [(np.asarray(layer["kernel"], np.float64), np.asarray(layer["bias"], np.float64))
            for layer in params]
  (x0, y0), (x1, y1) = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
  v = np.array([[[x0, y0], [x1, y0], [x1, y1], [x0, y1]]])
  cnt = np.array([4])
  kernel, bias = layers[0]
  maps = np.stack([kernel[0], kernel[1], bias])[None]
  patterns = np.zeros((1, 0), dtype=bool)
  terms = None
  for kernel, bias in layers[1:]:
    v, cnt, src, act = cut_layer(v, cnt, maps, rtol, terms)
    patterns = np.concatenate([patterns[src], act], axis=1)
    masked = maps[src] * act[:, None, :]
    f, _, m = masked.shape
    maps = (masked.reshape(3 * f, m) @ kernel).reshape(f, 3, kernel.shape[1])
    maps[:, 2, :] += bias
    terms = _previous_terms(masked, kernel, bias)
  vertices = [v[r, :k] for r, k in enumerate(cnt.tolist())]
  return vertices, patterns, np.transpose(maps[:, :2, :], (0, 2, 1)), maps[:, 2, :]
