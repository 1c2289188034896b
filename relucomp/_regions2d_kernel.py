"""Compiled layer-by-layer cutting of a rectangle into the regions of a ReLU MLP.

The 2-D enumeration (:func:`relucomp.regions_2d`) runs here, in one call of
compiled code (numba, cached on disk). The rectangle is refined layer by
layer: every polygon carries the affine maps of the layer's
pre-activations, ``z_j = a_0j y_0 + a_1j y_1 + b_j``, and is cut one zero
line at a time, with the tie and tolerance rules of
:func:`relucomp.regions_2d`:

* the value of neuron ``j`` at a vertex counts as zero when ``|z_j| <= rtol *
  (|a_0j y_0| + |a_1j y_1| + |b_j| + |m_0j y_0 + m_1j y_1 + m_bj|)``, where
  the *magnitude map* ``m_j`` is ``sum_k |W_kj| z_k`` over the previous
  layer's neurons ``k`` active on the cell, plus ``|b_j|`` (zero in the first
  layer): on the cell it equals ``sum_k |W_kj h_k| + |b_j|``, the sum of the
  absolute values of the neuron's own terms, and it is carried alongside
  the maps (rows 3-5), formed from the same terms with ``|W|``;
* a polygon's *lines* are the neurons strictly positive at one of its
  vertices and strictly negative at another; its pieces are cut by its lines
  in increasing neuron order, each piece by a line only where that line's
  values at the piece's own vertices (evaluated from the map, snapped) are
  strictly positive at one and strictly negative at another;
* a neuron is active on a cell iff it is strictly positive at one of the
  cell's vertices (for a neuron that is not a line of the polygon: at one of
  the polygon's vertices), so zero throughout counts as inactive.

A cut keeps the vertices on each side (zero vertices on both) in their
cyclic order and inserts the crossing point of every edge whose ends have
strictly opposite signs: the intersection of the cutting line with the
edge's own line (every vertex carries the unit line of the edge leaving it:
a side of the rectangle or the line of the neuron that cut it), or, for
nearly parallel lines, ``v_i + t (v_{i+1} - v_i)`` with ``t = z_i / (z_i -
z_{i+1})``; the two parts of a counter-clockwise polygon are
counter-clockwise. Lines through existing vertices, several lines through a
point and lines only touching a polygon therefore never make slivers, and
the cells do not depend on the order of the cuts.

The compiled functions use NumPy's error model (no check for a zero
divisor): ``t`` above has a non-zero denominator, the intersection is only
formed for a determinant away from zero, and a line is only scaled by a
non-zero coefficient.

Most neurons keep one sign on a polygon. Their values are not evaluated at
every vertex: the value at the centre of the polygon's bounding box, with a
bound of the change across the box, the zero tolerance and the rounding
errors (a generous multiple of the unit roundoff), settles the sign at every
vertex at once. Only neurons whose bound does not exclude zero are evaluated
at the vertices, so the outcome is the one evaluating every vertex gives.

The cells of one polygon differ only in the states of its lines. So the
next layer's maps are not formed per cell: each polygon stores its *base*,
the product of its maps without its lines and inactive neurons with the
next kernel (plus the bias), and each cell's maps are that base plus the
terms of the polygon's lines active on the cell, formed when the cell is
cut in turn. The maps are therefore sums of the same terms as a product of
the masked maps with the kernel, in another order (equal to roundoff).

:func:`enumerate_cells` allocates the buffers and cuts each layer with
:func:`_layer`, which stops when a buffer is full; the buffer is replaced by
a larger copy and the layer resumes where it stopped (a variable replaced
inside the cutting loops would cost reference counting in every pass).
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["enumerate_cells"]

# Rounding allowance of the sign bound, relative to the sum of the absolute
# values of a neuron's terms over the box (a few roundings of each term,
# with a wide margin), and an absolute one for subnormal results.
_SLACK = 32.0 * np.finfo(np.float64).eps
_TINY = 1e-280
# Two unit lines (largest coefficient 1) whose determinant is below this are
# treated as parallel: their crossing is interpolated along the edge.
_PARALLEL = 1e-8
# A neuron's state on a polygon.
_INACTIVE = 0
_ACTIVE = 1
_LINE = 2
# Why a layer stopped: done, or which buffer is full (the driver grows it
# and goes on from the polygon that did not fit).
_DONE = 0
_FULL_SCRATCH = 1
_FULL_POOL = 2
_FULL_STACK = 3
_FULL_VERTICES = 4
_FULL_CELLS = 5
_FULL_LINES = 6
_TOO_MANY = 7


@numba.njit(cache=True, error_model="numpy", inline="always")
def _grow(a, need):
  """``a`` copied into a buffer of at least ``need`` rows (doubling)."""
  out = np.empty((max(need, 2 * a.shape[0], 1),) + a.shape[1:], a.dtype)
  out[:a.shape[0]] = a
  return out


@numba.njit(cache=True, error_model="numpy", inline="always")
def _box(xy, start, stop):
  """Centre ``(c0, c1)``, half-widths ``(r0, r1)`` and ``(|c0| + r0, |c1| +
  r1)`` of the bounding box of vertices ``start:stop``."""
  lx = hx = xy[start, 0]
  ly = hy = xy[start, 1]
  for i in range(start + 1, stop):
    lx = min(lx, xy[i, 0])
    hx = max(hx, xy[i, 0])
    ly = min(ly, xy[i, 1])
    hy = max(hy, xy[i, 1])
  c0 = 0.5 * lx + 0.5 * hx
  c1 = 0.5 * ly + 0.5 * hy
  r0 = 0.5 * hx - 0.5 * lx
  r1 = 0.5 * hy - 0.5 * ly
  return c0, c1, r0, r1, abs(c0) + r0, abs(c1) + r1


@numba.njit(cache=True, error_model="numpy", inline="always")
def _sign_on_box(a0, a1, b, m0, m1, mb, c0, c1, r0, r1, e0, e1, rtol):
  """``1`` / ``-1`` if the neuron is certainly positive / negative (and not
  snapped) at every point of the box, else ``0``."""
  zc = a0 * c0 + a1 * c1 + b
  scale = abs(a0) * e0 + abs(a1) * e1 + abs(b) + abs(m0) * e0 + abs(m1) * e1 + abs(mb)
  bound = abs(a0) * r0 + abs(a1) * r1 + (rtol + _SLACK) * scale + _TINY
  if abs(zc) > bound and bound < np.inf and abs(zc) < np.inf:
    return 1 if zc > 0.0 else -1
  return 0


@numba.njit(cache=True, error_model="numpy", inline="always")
def _values(xy, start, stop, a0, a1, b, m0, m1, mb, rtol, z):
  """Snapped values of one neuron at vertices ``start:stop`` into ``z[0:]``.

  The scale of the zero tolerance at a vertex is ``|a_0 y_0| + |a_1 y_1| +
  |b|`` plus the magnitude map ``|m_0 y_0 + m_1 y_1 + m_b|`` (see the
  module). Returns whether one is strictly positive and whether one is
  strictly negative.
  """
  pos = False
  neg = False
  for i in range(start, stop):
    t0 = xy[i, 0] * a0
    t1 = xy[i, 1] * a1
    value = t0 + t1 + b
    terms = abs(xy[i, 0] * m0 + xy[i, 1] * m1 + mb)
    if abs(value) <= rtol * (abs(t0) + abs(t1) + abs(b) + terms):
      value = 0.0
    z[i - start] = value
    pos |= value > 0.0
    neg |= value < 0.0
  return pos, neg


@numba.njit(cache=True, error_model="numpy", inline="always")
def _unit_line(a0, a1, b):
  """The line ``a_0 y_0 + a_1 y_1 + b = 0`` scaled to ``max(|a_0|, |a_1|) = 1``
  (``(0, 0, 0)`` when that is zero or not finite: no line)."""
  top = max(abs(a0), abs(a1))
  if top > 0.0 and top < np.inf:
    return a0 / top, a1 / top, b / top
  return 0.0, 0.0, 0.0


@numba.njit(cache=True, error_model="numpy", inline="always")
def _emit(part, k, x, y, pool, i, keep, l0, l1, l2):
  """Point ``k`` of ``part``: ``(x, y)`` and the line of the edge leaving it
  (that of pool vertex ``i``'s edge if ``keep``, else the cutting line)."""
  part[k, 0] = x
  part[k, 1] = y
  if keep:
    part[k, 2] = pool[i, 2]
    part[k, 3] = pool[i, 3]
    part[k, 4] = pool[i, 4]
  else:
    part[k, 2] = l0
    part[k, 3] = l1
    part[k, 4] = l2


@numba.njit(cache=True, error_model="numpy", inline="always")
def _crossing(pool, i, n, zi, zn, l0, l1, l2):
  """Where the cutting line ``l`` crosses the edge from pool vertex ``i`` to ``n``.

  The intersection of ``l`` with the edge's own line (Cramer's rule on the
  two lines, accurate at the scale of the point however long the edge);
  the interpolation ``v_i + t (v_n - v_i)``, ``t = z_i / (z_i - z_n)``, when
  the lines are nearly parallel or the intersection falls far off the
  edge. Clipped to the edge's bounding box.
  """
  x0 = pool[i, 0]
  y0 = pool[i, 1]
  x1 = pool[n, 0]
  y1 = pool[n, 1]
  t = zi / (zi - zn)
  px = x0 + t * (x1 - x0)
  py = y0 + t * (y1 - y0)
  lx = min(x0, x1)
  hx = max(x0, x1)
  ly = min(y0, y1)
  hy = max(y0, y1)
  e0 = pool[i, 2]
  e1 = pool[i, 3]
  e2 = pool[i, 4]
  det = l0 * e1 - l1 * e0
  if abs(det) > _PARALLEL:
    qx = (l1 * e2 - l2 * e1) / det
    qy = (l2 * e0 - l0 * e2) / det
    w = (hx - lx) + (hy - ly)
    if lx - w <= qx <= hx + w and ly - w <= qy <= hy + w:
      px = qx
      py = qy
  return min(max(px, lx), hx), min(max(py, ly), hy)


@numba.njit(cache=True, error_model="numpy", inline="always")
def _maps_of(cell, src, base, line_off, line_ids, line_maps, act, act_at, width, kernel,
             out, row):
  """The maps of a cell into ``out[row]`` ``(3, n)``: its source polygon's
  base plus the terms of the source's lines active on the cell."""
  p = src[cell]
  n = kernel.shape[1]
  rows = out.shape[1]
  for r in range(rows):
    for o in range(n):
      out[row, r, o] = base[p, r, o]
  for c in range(line_off[p], line_off[p + 1]):
    j = line_ids[c]
    if act[act_at + cell * width + j]:
      for r in range(3):
        weight = line_maps[c, r]
        for o in range(n):
          out[row, r, o] += weight * kernel[j, o]
          if rows > 3:
            out[row, 3 + r, o] += weight * abs(kernel[j, o])


@numba.njit(cache=True, error_model="numpy", inline="always")
def _room_for_polygon(size, pool, stack, z, lines_needed, next_line_ids):
  """``_DONE`` if the scratch buffers hold a polygon of ``size`` vertices, else which is full."""
  if size > pool.shape[0]:
    return _FULL_POOL
  if stack.shape[0] < 2:
    return _FULL_STACK
  if 4 * size > z.shape[0]:
    return _FULL_SCRATCH
  if lines_needed > next_line_ids.shape[0]:
    return _FULL_LINES
  return _DONE


@numba.njit(cache=True, error_model="numpy", inline="always")
def _states(maps, xy, start, stop, rtol, z, state, lines):
  """The neurons' states on a polygon; its lines (in increasing order) and their number."""
  c0, c1, r0, r1, e0, e1 = _box(xy, start, stop)
  n_lines = 0
  for j in range(maps.shape[2]):
    a0 = maps[0, 0, j]
    a1 = maps[0, 1, j]
    b = maps[0, 2, j]
    m0 = maps[0, 3, j]
    m1 = maps[0, 4, j]
    mb = maps[0, 5, j]
    sign = _sign_on_box(a0, a1, b, m0, m1, mb, c0, c1, r0, r1, e0, e1, rtol)
    if sign != 0:
      state[j] = _ACTIVE if sign > 0 else _INACTIVE
      continue
    is_pos, is_neg = _values(xy, start, stop, a0, a1, b, m0, m1, mb, rtol, z)
    if is_pos and is_neg:
      state[j] = _LINE
      lines[n_lines] = j
      n_lines += 1
    else:
      state[j] = _ACTIVE if is_pos else _INACTIVE
  return n_lines


@numba.njit(cache=True, error_model="numpy", inline="always")
def _store_cell(pool, q0, kq, p, state, lines, n_lines, st_state, at, out_xy, out_off,
                src_all, act_all, n_v, count, n_src, n_act, max_cells):
  """Appends the piece ``pool[q0:q0 + kq]`` of polygon ``p`` to the cells.

  Returns ``(status, n_v, count, n_src, n_act)``: the outputs' new sizes,
  or the old ones with the status of the buffer that is full.
  """
  m = state.shape[0]
  if count >= max_cells:
    return _TOO_MANY, n_v, count, n_src, n_act
  if n_v + kq > out_xy.shape[0]:
    return _FULL_VERTICES, n_v, count, n_src, n_act
  if (count + 2 > out_off.shape[0] or n_src + 1 > src_all.shape[0]
      or n_act + m > act_all.shape[0]):
    return _FULL_CELLS, n_v, count, n_src, n_act
  for i in range(kq):
    for col in range(5):
      out_xy[n_v + i, col] = pool[q0 + i, col]
  out_off[count + 1] = n_v + kq
  src_all[n_src] = p
  for j in range(m):
    act_all[n_act + j] = state[j] == _ACTIVE
  for c in range(n_lines):
    act_all[n_act + lines[c]] = st_state[at + c]
  return _DONE, n_v + kq, count + 1, n_src + 1, n_act + m


@numba.njit(cache=True, error_model="numpy", inline="always")
def _split(pool, q0, kq, z, part, maps, j):
  """Cuts the piece ``pool[q0:q0 + kq]`` by line ``j`` (values ``z``) into ``part``.

  First the part ``z <= 0``, then the part ``z >= 0``. Each point carries
  the line of the edge that leaves it: its old edge's if the start of that
  edge lies on this side, else line ``j``. Returns ``(k_neg, k_all)``, the
  end of the first part and of both.
  """
  l0, l1, l2 = _unit_line(maps[0, 0, j], maps[0, 1, j], maps[0, 2, j])
  k_neg = 0
  k_all = 0
  for side in range(2):
    for i in range(kq):
      nxt = i + 1 if i + 1 < kq else 0
      zi = z[i]
      zn = z[nxt]
      if (zi <= 0.0) if side == 0 else (zi >= 0.0):
        after = zi if zi != 0.0 else zn
        _emit(part, k_all, pool[q0 + i, 0], pool[q0 + i, 1], pool, q0 + i,
              (after <= 0.0) if side == 0 else (after >= 0.0), l0, l1, l2)
        k_all += 1
      if (zi > 0.0 and zn < 0.0) or (zi < 0.0 and zn > 0.0):
        x, y = _crossing(pool, q0 + i, q0 + nxt, zi, zn, l0, l1, l2)
        _emit(part, k_all, x, y, pool, q0 + i, (zn < 0.0) if side == 0 else (zn > 0.0),
              l0, l1, l2)
        k_all += 1
    if side == 0:
      k_neg = k_all
  return k_neg, k_all


@numba.njit(cache=True, error_model="numpy", inline="always")
def _next_lines_and_base(p, maps, state, lines, n_lines, n_l, next_kernel, next_bias,
                         next_line_ids, next_line_maps, next_line_off, next_base):
  """Polygon ``p``'s lines for the next layer, and its base there.

  The base: the maps' columns of its active neurons (not lines) times the
  next kernel, plus the next bias on the constant row (rows 3-5: the same
  with magnitudes). Returns the new number of lines.
  """
  n = next_kernel.shape[1]
  for c in range(n_lines):
    next_line_ids[n_l + c] = lines[c]
    for r in range(3):
      next_line_maps[n_l + c, r] = maps[0, r, lines[c]]
  n_l += n_lines
  next_line_off[p + 1] = n_l
  for r in range(6):
    for o in range(n):
      next_base[p, r, o] = 0.0
  for j in range(state.shape[0]):
    if state[j] == _ACTIVE:
      w0 = maps[0, 0, j]
      w1 = maps[0, 1, j]
      w2 = maps[0, 2, j]
      for o in range(n):
        k = next_kernel[j, o]
        next_base[p, 0, o] += w0 * k
        next_base[p, 1, o] += w1 * k
        next_base[p, 2, o] += w2 * k
        k = abs(k)
        next_base[p, 3, o] += w0 * k
        next_base[p, 4, o] += w1 * k
        next_base[p, 5, o] += w2 * k
  for o in range(n):
    next_base[p, 2, o] += next_bias[o]
    next_base[p, 5, o] += abs(next_bias[o])
  return n_l


@numba.njit(cache=True, error_model="numpy", inline="always")
def _next_cut(pool, q0, q1, maps, lines, n_lines, c, st_state, at, rtol, z):
  """The first of the lines ``c, c + 1, ...`` that cuts the piece ``pool[q0:q1]``.

  Records the side of every line before it in ``st_state[at:]``; returns
  ``n_lines`` when none cuts (the piece is a cell), leaving its values in ``z``
  otherwise.
  """
  c0, c1, r0, r1, e0, e1 = _box(pool, q0, q1)
  while c < n_lines:
    j = lines[c]
    a0 = maps[0, 0, j]
    a1 = maps[0, 1, j]
    b = maps[0, 2, j]
    m0 = maps[0, 3, j]
    m1 = maps[0, 4, j]
    mb = maps[0, 5, j]
    sign = _sign_on_box(a0, a1, b, m0, m1, mb, c0, c1, r0, r1, e0, e1, rtol)
    if sign != 0:
      st_state[at + c] = sign > 0
      c += 1
      continue
    is_pos, is_neg = _values(pool, q0, q1, a0, a1, b, m0, m1, mb, rtol, z)
    if not (is_pos and is_neg):
      st_state[at + c] = is_pos
      c += 1
      continue
    return c
  return n_lines


@numba.njit(cache=True, error_model="numpy")
def _layer(p, depth, xy, off, base, layer_src, line_off, line_ids, line_maps, act_prev,
           kernel, next_kernel, next_bias, rtol, z, part, pool, stack, st_state, out_xy,
           out_off, src_all, act_all, next_base, next_line_off, next_line_ids, next_line_maps,
           counts, max_cells):
  """Cuts the polygons ``p, p + 1, ...`` of a layer (see :func:`enumerate_cells`).

  For each polygon: its maps (its source's base plus its active lines, see
  :func:`_maps_of`); its neurons' states and lines; its cells; then its
  lines and its base for the next layer.

  The cells: the pieces of the polygon are a stack of ``depth`` pieces,
  piece ``e`` with vertices ``pool[stack[e, 0]:stack[e + 1, 0]]``, its next
  line ``stack[e, 1]`` and its lines' states ``st_state[e * n_lines:]``. The
  top piece is tested against its next lines until one cuts it (its part
  ``z <= 0`` replaces it, its part ``z >= 0`` goes on top, both go on with
  the next line) or none is left (it is a cell: it leaves the stack for the
  outputs).

  No buffer is replaced here, and the helpers the loops use are inlined
  (either would cost reference counting in every pass): when a buffer is
  full, this returns which, with the polygon to resume from and its stack
  (``p``, ``depth``; ``depth`` 0 starts the polygon afresh). ``counts`` holds the outputs'
  sizes so far: vertices, cells, sources, pattern entries and lines.

  Returns:
    ``(status, p, depth)``.
  """
  f = off.shape[0] - 1
  width_prev = kernel.shape[0]
  m = kernel.shape[1]
  n = next_kernel.shape[1]
  n_v, count, n_src, n_act, n_l = counts[0], counts[1], counts[2], counts[3], counts[4]
  maps = np.empty((1, 6, m))
  state = np.empty(m, np.int8)
  lines = np.empty(m, np.int64)
  status = _DONE
  while p < f:
    start = off[p]
    stop = off[p + 1]
    if depth == 0:
      status = _room_for_polygon(stop - start, pool, stack, z, n_l + m, next_line_ids)
      if status != _DONE:
        break
    _maps_of(p, layer_src, base, line_off, line_ids, line_maps, act_all, act_prev, width_prev,
             kernel, maps, 0)

    n_lines = _states(maps, xy, start, stop, rtol, z, state, lines)

    # Its cells.
    if depth == 0:
      for i in range(stop - start):
        for col in range(5):
          pool[i, col] = xy[start + i, col]
      stack[0, 0] = 0
      stack[0, 1] = 0
      stack[1, 0] = stop - start
      depth = 1
    while depth > 0:
      e = depth - 1
      q0 = stack[e, 0]
      q1 = stack[e + 1, 0]
      kq = q1 - q0
      if 4 * kq > z.shape[0]:
        status = _FULL_SCRATCH
        break
      at = e * n_lines
      c = _next_cut(pool, q0, q1, maps, lines, n_lines, stack[e, 1], st_state, at, rtol, z)
      if c == n_lines:
        # A cell.
        status, n_v, count, n_src, n_act = _store_cell(
            pool, q0, kq, p, state, lines, n_lines, st_state, at, out_xy, out_off, src_all,
            act_all, n_v, count, n_src, n_act, max_cells)
        if status != _DONE:
          break
        depth -= 1
        continue
      k_neg, k_all = _split(pool, q0, kq, z, part, maps, lines[c])
      if q0 + k_all > pool.shape[0]:
        status = _FULL_POOL
        break
      if depth + 2 > stack.shape[0] or (depth + 1) * n_lines > st_state.shape[0]:
        status = _FULL_STACK
        break
      for i in range(k_all):
        for col in range(5):
          pool[q0 + i, col] = part[i, col]
      stack[e + 1, 0] = q0 + k_neg
      stack[e + 2, 0] = q0 + k_all
      stack[e, 1] = c + 1
      stack[e + 1, 1] = c + 1
      for i in range(c):
        st_state[at + n_lines + i] = st_state[at + i]
      st_state[at + c] = False
      st_state[at + n_lines + c] = True
      depth += 1
    if status != _DONE:
      break

    n_l = _next_lines_and_base(p, maps, state, lines, n_lines, n_l, next_kernel, next_bias,
                               next_line_ids, next_line_maps, next_line_off, next_base)
    p += 1
  counts[0], counts[1], counts[2], counts[3], counts[4] = n_v, count, n_src, n_act, n_l
  return status, p, depth


@numba.njit(cache=True, error_model="numpy")
def _rectangle(corners):
  """The rectangle's vertices, each with the unit line of the edge leaving it.

  Each vertex carries ``(y_0, y_1)`` and ``(l_0, l_1, l_2)``: the sides
  ``y_1 = y0``, ``y_0 = x1``, ``y_1 = y1``, ``y_0 = x0``.
  """
  xy = np.zeros((4, 5))
  xy[0, 0] = xy[3, 0] = corners[0]
  xy[1, 0] = xy[2, 0] = corners[2]
  xy[0, 1] = xy[1, 1] = corners[1]
  xy[2, 1] = xy[3, 1] = corners[3]
  xy[0, 3] = xy[2, 3] = 1.0
  xy[0, 4] = -corners[1]
  xy[2, 4] = -corners[3]
  xy[1, 2] = xy[3, 2] = 1.0
  xy[1, 4] = -corners[2]
  xy[3, 4] = -corners[0]
  return xy


@numba.njit(cache=True, error_model="numpy")
def _by_size(off, xy):
  """The regions in the order of their number of vertices.

  Returns ``(order, sizes, vertices)``: the regions' order, how many have
  each number of vertices, and their vertices ``(y_0, y_1)`` in that order.
  """
  count = off.shape[0] - 1
  most = 0
  for r in range(count):
    most = max(most, off[r + 1] - off[r])
  sizes = np.zeros(most + 1, np.int64)
  for r in range(count):
    sizes[off[r + 1] - off[r]] += 1
  at = np.zeros(most + 1, np.int64)
  for k in range(1, most + 1):
    at[k] = at[k - 1] + sizes[k - 1]
  order = np.empty(count, np.int64)
  for r in range(count):
    k = off[r + 1] - off[r]
    order[at[k]] = r
    at[k] += 1
  vertices = np.empty((xy.shape[0], 2))
  i = 0
  for r in order:
    for v in range(off[r], off[r + 1]):
      vertices[i, 0] = xy[v, 0]
      vertices[i, 1] = xy[v, 1]
      i += 1
  return order, sizes, vertices


@numba.njit(cache=True, error_model="numpy")
def _first_base(layers, m):
  """The rectangle's maps: the first kernel's rows and the bias (rows 0-2;
  rows 3-5, the magnitude maps, are zero in the first layer)."""
  base = np.zeros((1, 6, m))
  base[0, 0] = layers[:m]
  base[0, 1] = layers[m:2 * m]
  base[0, 2] = layers[2 * m:3 * m]
  return base


@numba.njit(cache=True, error_model="numpy")
def _scratch(widest, tiny):
  """Scratch buffers ``(z, part, pool, stack, st_state)`` (a stack holds at
  most one piece per line, plus one)."""
  z = np.empty(1 if tiny else 64)
  part = np.empty((z.shape[0], 5))
  pool = np.empty((1 if tiny else 16 * (widest + 2), 5))
  stack = np.empty((1 if tiny else widest + 3, 2), np.int64)
  st_state = np.empty(1 if tiny else (widest + 2) * widest, np.bool_)
  return z, part, pool, stack, st_state


@numba.njit(cache=True, error_model="numpy")
def _layer_buffers(f, m, n, tiny, counts, src_all, act_all):
  """The output buffers of a layer of ``f`` polygons, ``m`` neurons, ``n`` next.

  Room for the cells: as many as ``m`` lines in general position make in
  one polygon, at most four per polygon and 4096 more (grown if needed).
  """
  room = 1 if tiny else min(f * (1 + m + m * (m - 1) // 2), 4 * f + 4096)
  out_xy = np.empty((6 * room, 5))
  out_off = np.zeros(room + 1, np.int64)
  if counts[2] + room > src_all.shape[0]:
    src_all = _grow(src_all, counts[2] + room)
  if counts[3] + room * m > act_all.shape[0]:
    act_all = _grow(act_all, counts[3] + room * m)
  next_base = np.empty((f, 6, n))
  next_line_off = np.zeros(f + 1, np.int64)
  next_line_ids = np.empty(1 if tiny else 2 * f + m, np.int64)
  next_line_maps = np.empty((next_line_ids.shape[0], 3))
  return (out_xy, out_off, src_all, act_all, next_base, next_line_off, next_line_ids,
          next_line_maps)


@numba.njit(cache=True, error_model="numpy")
def _grow_full(status, counts, m, z, part, pool, stack, st_state, out_xy, out_off, src_all,
               act_all, next_line_ids, next_line_maps):
  """Grows the buffer that ``status`` names as full; returns every buffer."""
  if status == _FULL_SCRATCH:
    z = np.empty(2 * z.shape[0])
    part = np.empty((z.shape[0], 5))
  elif status == _FULL_POOL:
    pool = _grow(pool, 0)
  elif status == _FULL_STACK:
    stack = _grow(stack, 2)
    st_state = _grow(st_state, 0)
  elif status == _FULL_VERTICES:
    out_xy = _grow(out_xy, 0)
  elif status == _FULL_CELLS:
    if counts[1] + 2 > out_off.shape[0]:
      out_off = _grow(out_off, 0)
    if counts[2] + 1 > src_all.shape[0]:
      src_all = _grow(src_all, 0)
    if counts[3] + m > act_all.shape[0]:
      act_all = _grow(act_all, counts[3] + m)
  else:
    next_line_ids = _grow(next_line_ids, counts[4] + m)
    next_line_maps = _grow(next_line_maps, next_line_ids.shape[0])
  return (z, part, pool, stack, st_state, out_xy, out_off, src_all, act_all, next_line_ids,
          next_line_maps)


@numba.njit(cache=True, error_model="numpy")
def enumerate_cells(corners, layers, dims, rtol, tiny=False, max_cells=-1):
  """The regions of an MLP with two inputs on a rectangle (see the module).

  Args:
    corners: ``(x0, y0, x1, y1)``, the rectangle ``[x0, x1] x [y0, y1]``.
    layers: every layer's kernel ``(dims[l], dims[l + 1])`` in C order, then
      its bias, one layer after the other in one float64 array.
    dims: the widths ``(2, m_1, ..., m_H, n_out)`` (int64).
    rtol: the relative zero tolerance.
    tiny: start every buffer with room for one entry (the results are the
      same; this only makes every buffer grow, which tests exercise).
    max_cells: stop when a layer has more cells than this (``-1``: no limit).

  Returns:
    ``(xy, sizes, out, patterns)``: the regions' vertices, counter-clockwise,
    one region after the other, ``sizes[k]`` regions with ``k`` vertices
    first, then those with ``k + 1`` (``xy`` ``(V, 2)``); their affine maps
    ``out`` ``(count, 3, n_out)`` (rows: coefficient of ``y_0``, of ``y_1``,
    constant) and their activation patterns ``(count, m_h)`` in every hidden
    layer, one layer after the other, flattened; then ``stopped``: ``[-1, 0,
    0, 0]``, or, when ``max_cells`` stopped the enumeration, ``[h, cells,
    p, f]``: hidden layer ``h`` had ``cells`` cells from its first ``p`` of
    ``f`` polygons (the other outputs are then empty).
  """
  limit = max_cells if max_cells >= 0 else np.iinfo(np.int64).max
  n_layers = dims.shape[0] - 1
  hidden = n_layers - 1
  widest = 1
  for h in range(1, n_layers):
    widest = max(widest, dims[h])
  # The polygons of the first layer: the rectangle. A layer's polygons get
  # their maps from `base` (one per polygon of the layer before), their
  # sources and that layer's lines (see _maps_of); the rectangle's maps are
  # the first kernel's rows and the bias, without lines.
  xy = _rectangle(corners)
  off = np.array([0, 4], np.int64)
  m = dims[1]
  base = _first_base(layers, m)
  layer_src = np.zeros(1, np.int64)
  line_off = np.zeros(2, np.int64)
  line_ids = np.zeros(0, np.int64)
  line_maps = np.zeros((0, 3))
  kernel = np.zeros((0, m))
  act_prev = np.int64(0)
  layer_at = 3 * m
  # Every hidden layer's cells: sources and patterns, one layer after
  # another; counts[2:4] are their sizes.
  cells = np.zeros(hidden, np.int64)
  counts = np.zeros(5, np.int64)
  src_all = np.empty(0, np.int64)
  act_all = np.empty(0, np.bool_)
  z, part, pool, stack, st_state = _scratch(widest, tiny)

  for h in range(hidden):
    f = off.shape[0] - 1
    m = dims[h + 1]
    n = dims[h + 2]
    next_kernel = layers[layer_at:layer_at + m * n].reshape(m, n)
    next_bias = layers[layer_at + m * n:layer_at + m * n + n]
    layer_at += m * n + n
    (out_xy, out_off, src_all, act_all, next_base, next_line_off, next_line_ids,
     next_line_maps) = _layer_buffers(f, m, n, tiny, counts, src_all, act_all)
    counts[0] = counts[1] = counts[4] = 0
    p = np.int64(0)
    depth = np.int64(0)
    while True:
      status, p, depth = _layer(
          p, depth, xy, off, base, layer_src, line_off, line_ids, line_maps, act_prev, kernel,
          next_kernel, next_bias, rtol, z, part, pool, stack, st_state, out_xy, out_off,
          src_all, act_all, next_base, next_line_off, next_line_ids, next_line_maps, counts,
          limit)
      if status == _DONE or status == _TOO_MANY:
        break
      (z, part, pool, stack, st_state, out_xy, out_off, src_all, act_all, next_line_ids,
       next_line_maps) = _grow_full(status, counts, m, z, part, pool, stack, st_state, out_xy,
                                    out_off, src_all, act_all, next_line_ids, next_line_maps)
    if status == _TOO_MANY:
      stopped = np.array([h, counts[1], p, f], np.int64)
      return (np.empty((0, 2)), np.zeros(1, np.int64), np.empty((0, 3, dims[n_layers])),
              np.empty(0, np.bool_), stopped)
    # The cells become the next layer's polygons.
    n_v, count, n_src, n_act, n_l = counts[0], counts[1], counts[2], counts[3], counts[4]
    cells[h] = count
    xy = out_xy[:n_v]
    off = out_off[:count + 1]
    base = next_base
    layer_src = src_all[n_src - count:n_src]
    line_off = next_line_off
    line_ids = next_line_ids[:n_l]
    line_maps = next_line_maps[:n_l]
    act_prev = n_act - count * m
    kernel = next_kernel

  # The regions in the order of their number of vertices (so that the
  # caller makes each one's vertex array from a block of regions of one size
  # at once): the vertices, the output layer's maps and the patterns.
  count = off.shape[0] - 1
  order, sizes, vertices = _by_size(off, xy)
  out = np.empty((count, 3, dims[n_layers]))
  for region in range(count):
    _maps_of(order[region], layer_src, base, line_off, line_ids, line_maps, act_all, act_prev,
             kernel.shape[0], kernel, out, region)
  return (vertices, sizes, out, _patterns(order, src_all, act_all, cells, dims),
          np.array([-1, 0, 0, 0], np.int64))


@numba.njit(cache=True, error_model="numpy")
def _patterns(order, src_all, act_all, cells, dims):
  """Every hidden layer's pattern on the regions ``order`` (cells of the
  last layer).

  Returns the patterns ``(count, m_h)`` of the layers one after the other,
  flattened: a region's pattern in layer ``h`` is that of its ancestor among
  the cells of layer ``h``, found through the sources.
  """
  hidden = cells.shape[0]
  count = order.shape[0]
  total = 0
  for h in range(hidden):
    total += dims[h + 1]
  out = np.empty(count * total, np.bool_)
  # Where each layer's sources and patterns start in src_all and act_all.
  src_at = np.zeros(hidden, np.int64)
  act_at = np.zeros(hidden, np.int64)
  out_at = np.zeros(hidden, np.int64)
  for h in range(1, hidden):
    src_at[h] = src_at[h - 1] + cells[h - 1]
    act_at[h] = act_at[h - 1] + cells[h - 1] * dims[h]
    out_at[h] = out_at[h - 1] + count * dims[h]
  cell = order.copy()                         # each region's cell in layer h
  for h in range(hidden - 1, -1, -1):
    m = dims[h + 1]
    for region in range(count):
      row = act_at[h] + cell[region] * m
      for j in range(m):
        out[out_at[h] + region * m + j] = act_all[row + j]
      cell[region] = src_all[src_at[h] + cell[region]]
  return out
