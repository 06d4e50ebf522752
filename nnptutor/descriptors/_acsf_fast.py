r"""The fast ACSF path: the reference's numbers (to 1e-12), several times faster than DScribe.

Pure numpy. The reference (:func:`.acsf.reference_features`) evaluates exp, cos and a
power for every triplet and every parameter; here the same sums are rearranged so that
numpy spends its time in a few large, cheap operations (docs/acsf.md explains each step):

1. **Blocks of centres with padded neighbour lists** (n_c, K), sorted by neighbour count.
2. **Sums as contractions**: G4 = ½ Σ_jk a_j a_k B_jk C_jk with a_j = e^{−η r_ij²} f_c(r_ij)
   per pair, B_jk = e^{−η r_jk²} f_c(r_jk), C_jk = (1 + λ cos θ_ijk)^ζ; all (ζ, λ) of one η
   in one matrix product.
3. **No transcendental function per triplet**: B is one polynomial in r_jk² (cosine cutoff).
4. **Integer ζ by repeated squaring**, shared by every parameter.
5. **Cyclic bands** (features): with K odd, each pair {j, k} is (j, j + d mod K) once, so
   cos θ_jk, r_jk² and a_j a_k are elementwise products of strided views.
6. **Flat triplets** for centres with few neighbours (molecules), one bincount per function.
7. **Derivatives as products with K×K matrices**, the Cartesian vectors only at the end.
8. **Forces without the derivative array** (:func:`fast_features_with_vjp`): dE/dG is
   contracted into one weight per triplet, the geometry kept from the forward pass.
9. **Reused buffers** (:class:`Workspace`): no page faults for fresh arrays per block.

Taught in notebooks/03_symmetry_functions.ipynb, optional section "How the fast path works".
"""
from __future__ import annotations

import math
import threading
from functools import lru_cache
from types import SimpleNamespace

import numpy as np
from numpy.polynomial import Chebyshev, Polynomial

from nnptutor.cutoffs import get_cutoff
from nnptutor.descriptors.base import scatter_pair_gradients

#: Entries of one (n_c, K, K) matrix per block: 2^16 float64 = 512 kB, cache-sized.
BLOCK_SIZE = 1 << 16

#: Centres with at most this many neighbours take the flat triplet path (features only);
#: measured on 1000 ethanol molecules (K = 8) and fcc Cu (K ≈ 78), benchmarks/README.md.
TRIPLET_MAX_K = 10

#: Triplets per chunk of the flat path: a chunk's dozen float64 vectors stay in cache.
TRIPLET_CHUNK = 1 << 15

#: Cap [bytes] on the per-block geometry that :func:`fast_features_with_vjp` keeps for the
#: backward pass (about 80 kB per Cu atom at r_c = 6 Å); blocks beyond it are recomputed.
VJP_CACHE_BYTES = 1 << 27  # 128 MiB


class Workspace:
    """Named scratch arrays reused from block to block: ``ws.get(name, shape)`` is an
    uninitialised view into a buffer kept under that name (arrays alive at the same time
    need different names)."""

    def __init__(self):
        self._buffers = {}

    def get(self, name, shape):
        size = math.prod(shape)
        buffer = self._buffers.get(name)
        if buffer is None or buffer.size < size:
            buffer = self._buffers[name] = np.empty(size)
        return buffer[:size].reshape(shape)


_THREAD = threading.local()


def _workspace() -> Workspace:
    """This thread's workspace, kept between calls (its page faults are paid once)."""
    if getattr(_THREAD, "workspace", None) is None:
        _THREAD.workspace = Workspace()
    return _THREAD.workspace


# ----------------------------------------------------------------- step 3: B as a polynomial
@lru_cache(maxsize=64)
def cutoff_gaussian_polynomial(eta: float, r_cut: float):
    """Power-series coefficients (lowest first) of q with f_c(√x) e^{−η x} = (1 − t)² q(y),
    t = x/r_c², y = 2t − 1, for the cosine cutoff; None if no Chebyshev fit of degree ≤ 48
    reaches 1e-14 (then B is evaluated directly). docs/acsf.md, "Triplet cutoff"."""
    a = eta * r_cut**2

    def q(t):
        s = np.sqrt(np.clip(t, 0.0, 1.0))
        return (np.pi / 2) ** 2 * np.sinc((1 - s) / 2) ** 2 / (1 + s) ** 2 * np.exp(-a * t)

    coef = Chebyshev.interpolate(q, 48, domain=[0, 1]).coef
    significant = np.flatnonzero(np.abs(coef) > 5e-15 * np.abs(coef).max())
    degree = min(max(int(significant[-1]) + 1, 2), 48)
    power = Chebyshev(coef[: degree + 1]).convert(kind=Polynomial).coef  # in y ∈ [−1, 1]
    t = np.linspace(0, 1, 4001)
    exact = 0.5 * (np.cos(np.pi * np.sqrt(t)) + 1) * np.exp(-a * t)
    approx = np.polynomial.polynomial.polyval(2 * t - 1, power) * (1 - t) ** 2
    return None if np.max(np.abs(approx - exact)) > 1e-14 else power


def _horner(coef, y, out):
    """out = Σ_n coef[n] y^n by Horner's rule, in place."""
    if len(coef) == 1:
        out.fill(coef[0])
        return out
    np.multiply(y, coef[-1], out=out)
    out += coef[-2]
    for c in coef[-3::-1]:
        np.multiply(out, y, out=out)
        out += c
    return out


def _triplet_cutoff(plan, ws, tag, eta, y, derivatives):
    """B = f_c(r_jk) e^{−η r_jk²} and B̂ = 2 dB/d(r_jk²) [Å⁻²] (None without derivatives).

    ``y`` = 2 r_jk²/r_c² − 1 clamped at 1, any shape; a (n_c, K, K) ``y`` gets a zero
    diagonal (j = k is no triplet). ``tag`` names the buffers.
    """
    coef = plan.polynomials.get(eta)
    B = ws.get(f"B{tag}", y.shape)
    B_hat = ws.get(f"B_hat{tag}", y.shape) if derivatives else None
    if coef is not None:
        one_minus = np.subtract(1.0, y, out=ws.get("one_minus", y.shape))  # 2(1 − t)
        q = _horner(coef * 0.25, y, ws.get("q", y.shape))  # (1 − t)² = ¼ (1 − y)²
        np.multiply(one_minus, one_minus, out=B)
        B *= q
        if derivatives:  # dB/dy = (1 − y)[(1 − y) q' − 2 q], dy/dx = 2/r_c²
            dq = _horner(np.polynomial.polynomial.polyder(coef) * 0.25, y, ws.get("dq", y.shape))
            np.multiply(one_minus, dq, out=B_hat)
            q *= 2.0
            B_hat -= q
            B_hat *= one_minus
            B_hat *= 4.0 / plan.r_cut**2
    else:
        x = np.maximum((y + 1.0) * (plan.r_cut**2 / 2), 0.0)  # r_jk² [Å²]
        r = np.sqrt(x)
        fc, dfc = plan.cutoff(r, plan.r_cut)
        gauss = np.exp(-eta * x)
        np.multiply(fc, gauss, out=B)
        if derivatives:
            with np.errstate(divide="ignore", invalid="ignore"):
                B_hat[...] = np.where(r > 0, 2 * gauss * (dfc / (2 * r) - eta * fc), 0.0)
    if y.ndim == 3:
        diag = np.arange(y.shape[-1])
        B[:, diag, diag] = 0.0
        if derivatives:
            B_hat[:, diag, diag] = 0.0
    return B, B_hat


# ----------------------------------------------------------------- the parameters' plan
class _Plan:
    """What depends on the parameters only: the distinct (ζ, λ) ``zl``, and ``groups`` of
    (kind, η, feature columns, zl indices, 2^(1−ζ)) that share a_j and B_jk."""

    def __init__(self, acsf):
        self.r_cut, self.cutoff_name = acsf.r_cut, acsf.cutoff
        self.cutoff = get_cutoff(acsf.cutoff)
        self.n_el, self.n_rad, self.n_ang = len(acsf.elements), acsf.n_radial, acsf.n_angular
        self.ang0 = self.n_el * self.n_rad
        angular = [("G4", p) for p in acsf.g4] + [("G5", p) for p in acsf.g5]
        self.zl = sorted({(z, l) for _, (e, z, l) in angular})
        self.groups = []
        for kind in ("G4", "G5"):
            for eta in sorted({p[0] for k, p in angular if k == kind}):
                members = [n for n, (k, p) in enumerate(angular) if k == kind and p[0] == eta]
                zls = [self.zl.index(tuple(angular[n][1][1:])) for n in members]
                norms = np.array([2.0 ** (1 - angular[n][1][1]) for n in members])
                self.groups.append((kind, eta, np.array(members), np.array(zls), norms))
        self.g4_etas = [eta for kind, eta, *_ in self.groups if kind == "G4"]
        self.polynomials = {}
        if acsf.cutoff == "cosine":
            self.polynomials = {eta: cutoff_gaussian_polynomial(eta, self.r_cut)
                                for eta in self.g4_etas}
        #: λ whose base 1 + λ cos θ is clipped at 0 (rounding; NaN for ζ ∉ ℤ otherwise)
        self.clip = {lam for zeta, lam in self.zl if not float(zeta).is_integer()}
        self.element_pairs = [(a, b) for a in range(self.n_el) for b in range(a + 1)]
        self.pair_index = np.zeros((self.n_el, self.n_el), dtype=np.intp)
        for pb, (a, b) in enumerate(self.element_pairs):
            self.pair_index[a, b] = self.pair_index[b, a] = pb


def _plan(acsf) -> _Plan:
    key = repr(acsf.to_dict())
    cached = getattr(acsf, "_fast_plan", None)
    if cached is None or cached[0] != key:
        acsf._fast_plan = (key, _Plan(acsf))
    return acsf._fast_plan[1]


# ----------------------------------------------------------------- step 4: powers of 1 ± cos θ
def _power(n, powers, ws, tag):
    """base**n (integer n ≥ 0), memoised in ``powers`` {exponent: array}, powers[1] = base."""
    if n not in powers:
        _power_into(ws.get(f"power{tag}_{n}", powers[1].shape), n, powers, ws, tag)
    return powers[n]


def _power_into(out, n, powers, ws, tag):
    """Write base**n into ``out`` by squarings and products of known powers; remember it."""
    if n in powers:
        np.copyto(out, powers[n])
        return
    if n == 0:
        out.fill(1.0)
    elif n % 2 == 0 and (n // 2 in powers or not any(n - m in powers for m in powers)):
        half = _power(n // 2, powers, ws, tag)
        np.multiply(half, half, out=out)
    elif n % 2 == 0:  # e.g. base**12 = base**8 · base**4: one product
        m = max(m for m in powers if n - m in powers)
        np.multiply(powers[m], powers[n - m], out=out)
    else:
        m = max(e for e in powers if e < n)
        np.multiply(powers[m], _power(n - m, powers, ws, tag), out=out)
    powers[n] = out


def _angular_stacks(plan, ws, cos):
    """C[z] = (1 + λ cos θ)^ζ for every (ζ, λ) of plan.zl, shape (n_zl,) + cos.shape, and
    the chains {λ: {exponent: power}} that made them (each power written into its slot)."""
    C = ws.get("C", (len(plan.zl),) + cos.shape)
    chains = {}
    for z, (zeta, lam) in enumerate(plan.zl):
        tag = "+" if lam > 0 else "-"
        if lam not in chains:
            base = C[z] if zeta == 1 else ws.get(f"base{tag}", cos.shape)
            np.add(1.0, cos, out=base) if lam > 0 else np.subtract(1.0, cos, out=base)
            if lam in plan.clip:
                np.maximum(base, 0.0, out=base)
            chains[lam] = {1: base}
            if zeta == 1:
                continue
        if float(zeta).is_integer():
            _power_into(C[z], int(zeta), chains[lam], ws, tag)
        else:
            np.power(chains[lam][1], zeta, out=C[z])
    return C, chains


def _cutoff_power_stack(plan, ws, chains, zls, B, out):
    """out[n] = B ∘ (1 + λ cos θ)^(ζ−1) for (ζ, λ) = plan.zl[zls[n]]: for integer ζ one
    product each, from the previous slot of the same λ (B, b B, b² (b B), b¹² (b³ B) for
    ζ = 1, 2, 4, 16) and the powers in ``chains``."""
    last = {}  # λ -> (exponent, slot)
    for n, z in enumerate(zls):
        zeta, lam = plan.zl[z]
        tag, powers = ("+" if lam > 0 else "-"), chains[lam]
        if not float(zeta).is_integer():
            np.power(powers[1], zeta - 1, out=out[n])
            out[n] *= B
            continue
        e = int(zeta) - 1
        if lam in last and last[lam][0] <= e:
            m, previous = last[lam]
            if e == m:
                np.copyto(out[n], previous)
            else:
                np.multiply(_power(e - m, powers, ws, tag), previous, out=out[n])
        elif e == 0:
            np.copyto(out[n], B)
        else:
            np.multiply(_power(e, powers, ws, tag), B, out=out[n])
        last[lam] = (e, out[n])
    return out


def _select(stack, zls):
    """stack[zls], without a copy when zls are consecutive."""
    if np.array_equal(zls, np.arange(zls[0], zls[0] + len(zls))):
        return stack[zls[0]:zls[0] + len(zls)]
    return stack[zls]


# ----------------------------------------------------------------- step 1: blocks of centres
def _padded_blocks(counts, block_size, min_count):
    """Yield (centres, entries, valid) for blocks of centres with min_count ≤ K neighbours
    (min_count ≥ 2), sorted by K: ``entries`` (n_c, K) neighbour-list rows (0 where ``valid``
    is False: padding), at most ``block_size`` entries in a K×K matrix per block."""
    starts = np.cumsum(counts) - counts
    centres = np.flatnonzero(counts >= max(min_count, 2))
    order = centres[np.argsort(counts[centres], kind="stable")]
    pos = 0
    while pos < len(order):
        n_c = len(order) - pos
        while True:  # as many centres as fit with the block's largest K
            K = counts[order[pos + n_c - 1]]
            fit = max(1, block_size // (K * K))
            if fit >= n_c:
                break
            n_c = fit
        cs = order[pos:pos + n_c]
        k = np.arange(K)
        valid = k[None, :] < counts[cs][:, None]
        yield cs, np.where(valid, starts[cs][:, None] + k[None, :], 0), valid
        pos += n_c


class _Block:
    """Geometry of one block as K×K matrices (derivatives): D (n_c, K, 3) [Å], r, U, species
    (−1 padding), cos θ_jk and y = 2 r_jk²/r_c² − 1 (clamped at 1), each (n_c, K, K)."""

    def __init__(self, plan, ws, entries, valid, vectors, distances, species_of_entry):
        n_c, K = entries.shape
        self.entries, self.valid = entries, valid
        self.D = vectors[entries] * valid[..., None]
        self.r = np.where(valid, distances[entries], 2 * plan.r_cut)  # padding beyond r_c
        self.U = self.D / self.r[..., None]
        self.species = np.where(valid, species_of_entry[entries], -1)
        self.cos = np.matmul(self.U, self.U.transpose(0, 2, 1), out=ws.get("cos", (n_c, K, K)))
        # y = c r_j² + c r_k² − 2c D_j·D_k − 1 (c = 2/r_c²) as one product of [−2cD, e, 1]
        # and [D, 1, e], e = c r² − ½
        c = 2.0 / plan.r_cut**2
        e = (c * self.r**2 - 0.5)[..., None]
        one = np.ones_like(e)
        left = np.concatenate([-2 * c * self.D, e, one], axis=2)
        right = np.concatenate([self.D, one, e], axis=2)
        self.y = np.matmul(left, right.transpose(0, 2, 1), out=ws.get("y", (n_c, K, K)))
        np.minimum(self.y, 1.0, out=self.y)


# ----------------------------------------------------------------- radial functions G1–G3
def _radial_rows(acsf, distances, fc, dfc=None):
    """The per-pair terms of :func:`.acsf.radial_terms` (same expressions) as rows
    (n_rad, n_pairs), and with ``dfc`` (f_c' [Å⁻¹]) their derivatives d/dr (else None)."""
    n_g2 = len(acsf.g2)
    rows = np.empty((1 + n_g2 + len(acsf.g3), len(distances)))
    drows = None if dfc is None else np.empty_like(rows)
    rows[0] = fc
    if dfc is not None:
        drows[0] = dfc
        shift = np.empty_like(distances)
    for n, (eta, r_s) in enumerate(acsf.g2, start=1):
        row = rows[n]
        np.subtract(distances, r_s, out=row)
        if dfc is not None:
            np.multiply(2 * eta, row, out=shift)
        np.multiply(row, row, out=row)
        row *= -eta
        np.exp(row, out=row)
        if dfc is not None:  # gauss (f_c' − 2η (r − r_s) f_c)
            shift *= fc
            np.subtract(dfc, shift, out=drows[n])
            drows[n] *= row
        row *= fc
    for n, kappa in enumerate(acsf.g3, start=1 + n_g2):
        row = rows[n]
        np.multiply(kappa, distances, out=row)
        if dfc is not None:  # cos(κr) f_c' − κ sin(κr) f_c
            sin = np.sin(row) * kappa * fc
        np.cos(row, out=row)
        if dfc is not None:
            np.multiply(row, dfc, out=drows[n])
            drows[n] -= sin
        row *= fc
    return rows, drows


def _radial(acsf, plan, i, j, distances, species, values, derivatives):
    """G1–G3 into ``values``, one bincount per function over (centre, neighbour element).

    Returns f_c, f_c' (None without ``derivatives``) per pair and dG/dr rows (n_rad, n_pairs).
    """
    if derivatives:
        fc, dfc = plan.cutoff(distances, plan.r_cut)
    elif plan.cutoff_name == "cosine":  # f_c only: its sine costs as much as its cosine
        fc, dfc = np.where(distances <= plan.r_cut,
                           0.5 * (np.cos(np.pi * distances / plan.r_cut) + 1.0), 0.0), None
    else:
        fc, dfc = plan.cutoff(distances, plan.r_cut)[0], None
    rows, drows = _radial_rows(acsf, distances, fc, dfc)
    n_keys = len(values) * plan.n_el
    key = i * plan.n_el + species[j]
    sums = np.empty((plan.n_rad, n_keys))
    for out, row in zip(sums, rows):
        out[...] = np.bincount(key, weights=row, minlength=n_keys)
    values[:, : plan.ang0] = sums.T.reshape(len(values), plan.ang0)
    return fc, dfc, drows


def _radial_entry(plan, j, vectors, distances, species, drows, entry):
    """dG/dD_p = (D_p / r_p) dG/dr_p into the radial columns of the neighbour's element."""
    unit = vectors / distances[:, None]
    dT = np.ascontiguousarray(drows.T)  # (n_pairs, n_rad)
    for s in range(plan.n_el):
        columns = slice(s * plan.n_rad, (s + 1) * plan.n_rad)
        if plan.n_el == 1:
            for a in range(3):
                np.multiply(unit[:, a, None], dT, out=entry[:, a, columns])
        else:
            rows = np.flatnonzero(species[j] == s)
            entry[rows, :, columns] = unit[rows, :, None] * dT[rows, None, :]


# ----------------------------------------------------------------- angular: shared pieces
def _pair_weights(plan, r, fc_entry, dfc_entry, eta, entries, valid):
    """a_j = e^{−η r²} f_c(r) and a'_j = da_j/dr (None without dfc), 0 for padding."""
    fc = fc_entry[entries] * valid
    gauss = np.exp(-eta * r**2)
    if dfc_entry is None:
        return gauss * fc, None
    return gauss * fc, gauss * (dfc_entry[entries] * valid - 2 * eta * r * fc)


def _columns(plan, members, n_pb):
    """Feature columns (n_pb, n_members) of a group, for every element pair."""
    return plan.ang0 + np.arange(n_pb)[:, None] * plan.n_ang + members


def _contract(plan, values, cs, Cz, X, members, norms):
    """values[cs, group columns] = Σ_t Cz[z, c, t] X[c, pb, t] norm_z; Cz (n_z, n_c, n_t),
    X (n_c, n_pb, n_t): one small matrix product per centre."""
    n_c, n_pb = X.shape[:2]
    G = np.matmul(Cz.transpose(1, 0, 2), X.transpose(0, 2, 1)).transpose(0, 2, 1) * norms
    columns = _columns(plan, members, n_pb).ravel()
    if np.array_equal(columns, np.arange(columns[0], columns[0] + len(columns))):
        values[cs, columns[0]:columns[0] + len(columns)] = G.reshape(n_c, -1)
    else:
        values[np.ix_(cs, columns)] = G.reshape(n_c, -1)


# ----------------------------------------------------------------- step 5: cyclic bands
@lru_cache(maxsize=256)
def _cyclic_pairs(K):
    """(j, k) of every slot t = d K + j of a cyclic band, k = (j + d + 1) mod K (K odd),
    and their flat indices j K + k, k K + j in a K×K matrix."""
    d, j = np.divmod(np.arange((K - 1) // 2 * K), K)
    k = (j + d + 1) % K
    return j, k, j * K + k, k * K + j


def _partner(row, shape):
    """View (n_c, n_d, K) of a doubled row (n_c, 2K): [c, d, j] = row[c, j + d + 1]."""
    s0, s1 = row.strides
    return np.lib.stride_tricks.as_strided(row[:, 1:], shape=shape, strides=(s0, s1, s1),
                                           writeable=False)


def _cyclic_geometry(plan, ws, entries, valid, vectors, distances, species_of_entry):
    """Block geometry on cyclic bands: entries, valid (K made odd by one padding column),
    r (n_c, K), species (−1 padding), cos θ_jk and y = 2 r_jk²/r_c² − 1 (clamped at 1),
    each (n_c, n_d K) in the slot order of :func:`_cyclic_pairs`."""
    n_c, K = entries.shape
    if K % 2 == 0:
        entries = np.concatenate([entries, np.zeros((n_c, 1), entries.dtype)], axis=1)
        valid = np.concatenate([valid, np.zeros((n_c, 1), bool)], axis=1)
        K += 1
    shape = (n_c, (K - 1) // 2, K)
    rows = ws.get("cyc_rows", (5, n_c, 2 * K))  # per-neighbour rows, written twice
    Ux, Uy, Uz, r_row, e = rows
    r = np.where(valid, distances[entries], 2 * plan.r_cut)
    inv_r = np.divide(valid, r)
    for comp, row in zip(vectors.T, (Ux, Uy, Uz)):
        np.multiply(comp[entries], inv_r, out=row[:, :K])
    r_row[:, :K] = r
    c = 2.0 / plan.r_cut**2  # y = e_j + e_k − 2c r_j r_k cos θ_jk, e = c r² − ½
    np.multiply(c * r, r, out=e[:, :K])
    e[:, :K] -= 0.5
    rows[:, :, K:] = rows[:, :, :K]
    cos = np.multiply(Ux[:, None, :K], _partner(Ux, shape), out=ws.get("cos_p", shape))
    tmp = ws.get("cyc_tmp", shape)
    for row in (Uy, Uz):
        cos += np.multiply(row[:, None, :K], _partner(row, shape), out=tmp)
    y = np.multiply((-2.0 * c) * r[:, None, :], _partner(r_row, shape), out=ws.get("y_p", shape))
    y *= cos
    y += e[:, None, :K]
    y += _partner(e, shape)
    np.minimum(y, 1.0, out=y)
    flat = (n_c, shape[1] * K)
    return SimpleNamespace(entries=entries, valid=valid, r=r, cos=cos.reshape(flat),
                           y=y.reshape(flat),
                           species=np.where(valid, species_of_entry[entries], -1))


def _cyclic_features(plan, ws, cs, g, fc, values, B_of):
    """Angular features of one block from its cyclic geometry ``g`` and {η: B} (step 5)."""
    n_c, K = g.entries.shape
    shape = (n_c, (K - 1) // 2, K)
    C, _ = _angular_stacks(plan, ws, g.cos)
    n_pb = len(plan.element_pairs)
    X = ws.get("X_p", (n_c, n_pb) + shape[1:])
    A = ws.get("cyc_a", (plan.n_el, n_c, 2 * K))  # a_j of the neighbours of each element
    tmp = ws.get("cyc_tmp", shape)
    for kind, eta, members, zls, norms in plan.groups:
        a, _ = _pair_weights(plan, g.r, fc, None, eta, g.entries, g.valid)
        for s in range(plan.n_el):
            if n_pb > 1:
                np.multiply(a, g.species == s, out=A[s, :, :K])
            else:
                A[s, :, :K] = a
            A[s, :, K:] = A[s, :, :K]
        for pb, (sa, sb) in enumerate(plan.element_pairs):
            np.multiply(A[sa, :, None, :K], _partner(A[sb], shape), out=X[:, pb])
            if sa != sb:
                X[:, pb] += np.multiply(A[sb, :, None, :K], _partner(A[sa], shape), out=tmp)
        Xf = X.reshape(n_c, n_pb, -1)
        if kind == "G4":
            Xf *= B_of[eta][:, None]
        _contract(plan, values, cs, _select(C, zls), Xf, members, norms)


# ----------------------------------------------------------------- step 6: flat triplets
def _triplet_chunks(counts, starts, max_k, chunk=TRIPLET_CHUNK):
    """Yield (centres, p, q) for centres with 2 ≤ K ≤ max_k, grouped by K: p, q (n_c,
    K(K−1)/2) the neighbour-list rows of neighbours j < k."""
    for K in np.unique(counts[(counts >= 2) & (counts <= max_k)]):
        cs = np.flatnonzero(counts == K)
        tj, tk = np.triu_indices(int(K), 1)
        per = max(1, chunk // len(tj))
        for lo in range(0, len(cs), per):
            first = starts[cs[lo:lo + per], None]
            yield cs[lo:lo + per], first + tj, first + tk


def _triplet_features(plan, ws, counts, j, vectors, distances, species, fc, values):
    """Angular features of the centres with at most TRIPLET_MAX_K neighbours (step 6): long
    vectorised gathers over all their triplets, one bincount per function into (centre,
    element pair)."""
    starts = np.cumsum(counts) - counts
    Dx, Dy, Dz = np.ascontiguousarray(vectors.T)
    r2, inv_r = distances * distances, 1.0 / distances
    c = 2.0 / plan.r_cut**2
    n_pb = len(plan.element_pairs)
    s_entry = species[j]
    s_row, lookup = s_entry * plan.n_el, plan.pair_index.ravel()
    weights = {(kind, eta): np.exp(-eta * r2) * fc for kind, eta, *_ in plan.groups}
    for cs, p, q in _triplet_chunks(counts, starts, TRIPLET_MAX_K):
        n_c, n_t = p.shape
        p, q = p.ravel(), q.ravel()
        tp, tq = ws.get("t_p", p.shape), ws.get("t_q", p.shape)
        dot = np.multiply(np.take(Dx, p, out=tp), np.take(Dx, q, out=tq), out=ws.get("t_dot", p.shape))
        for comp in (Dy, Dz):
            dot += np.multiply(np.take(comp, p, out=tp), np.take(comp, q, out=tq), out=tp)
        cos = np.multiply(dot, np.take(inv_r, p, out=tp), out=ws.get("t_cos", p.shape))
        cos *= np.take(inv_r, q, out=tp)
        y = np.add(np.take(r2, p, out=tp), np.take(r2, q, out=tq), out=ws.get("t_y", p.shape))
        dot *= 2.0
        y -= dot
        y *= c
        y -= 1.0
        np.minimum(y, 1.0, out=y)  # y = c r_jk² − 1, clamped
        C, _ = _angular_stacks(plan, ws, cos)
        key = np.repeat(np.arange(n_c) * n_pb, n_t)
        if n_pb > 1:
            key += lookup[s_row[p] + s_entry[q]]
        G = np.empty((plan.n_ang, n_c * n_pb))
        W, term = ws.get("t_W", p.shape), ws.get("t_term", p.shape)
        for kind, eta, members, zls, norms in plan.groups:
            a = weights[kind, eta]
            np.multiply(np.take(a, p, out=tp), np.take(a, q, out=tq), out=W)
            if kind == "G4":
                W *= _triplet_cutoff(plan, ws, 0, eta, y, False)[0]
            for m, z, norm in zip(members, zls, norms):
                G[m] = np.bincount(key, np.multiply(C[z], W, out=term), minlength=n_c * n_pb)
                G[m] *= norm
        values[cs, plan.ang0:] = G.T.reshape(n_c, n_pb * plan.n_ang)


# ----------------------------------------------------------------- step 7: derivatives
def _angular_block(plan, ws, block, cs, fc, dfc, values, entry):
    """Features and dG/dD of one K×K block, group by group (:func:`_angular_derivatives`)."""
    n_c, K = block.r.shape
    C, chains = _angular_stacks(plan, ws, block.cos)
    scales = np.array([zeta * lam for zeta, lam in plan.zl])  # dC/dcos θ = ζ λ (…)^(ζ−1)
    onehot = (block.species[..., None] == np.arange(plan.n_el)).astype(float)
    offdiag = np.broadcast_to(1.0 - np.eye(K), (n_c, K, K))  # G5: B = 1 for j ≠ k
    B_of = {}
    for kind, eta, members, zls, norms in plan.groups:
        a, da = _pair_weights(plan, block.r, fc, dfc, eta, block.entries, block.valid)
        if kind == "G5":
            B, B_hat = offdiag, None
        else:
            if eta not in B_of:
                B_of[eta] = _triplet_cutoff(plan, ws, len(B_of), eta, block.y, True)
            B, B_hat = B_of[eta]
        M = np.multiply(_select(C, zls), B, out=ws.get("M", (len(zls), n_c, K, K)))
        _angular_derivatives(plan, block, cs, a, da, M, B_hat, _select(C, zls), scales[zls],
                             lambda out: _cutoff_power_stack(plan, ws, chains, zls, B, out),
                             members, norms, onehot, values, entry)


def _angular_derivatives(plan, block, cs, a, da, M, B_hat, C, scales, make_P, members,
                         norms, onehot, values, entry):
    """Features and dG/dD_m of one group on one block (docs/acsf.md, "Derivatives").

    With A_t = a ∘ [element t], M = B∘C, N = B̂∘C, P = B∘C'/(ζλ) (all symmetric K×K):
    G_st = Σ_m A_s(m) (M A_t)_m (halved if s = t), and
    H_t(m) = D_m [(a'_m/r_m)(M A_t)_m + a_m (N A_t)_m] − a_m (N (A_t∘D))_m
             + (a_m/r_m) [V_t(m) − U_m (U_m·V_t(m))],  V_t = ζλ P (A_t∘U);
    dG_st/dD_m = [m is s] H_t(m) + [m is t] H_s(m) (once if s = t). Products are taken as
    Rᵀ M (rows of R times a symmetric matrix): inner loops then run over the K neighbours.
    """
    n_c, K = block.r.shape
    S, n_z = plan.n_el, M.shape[0]
    At = np.ascontiguousarray((a[..., None] * onehot).transpose(0, 2, 1))  # (n_c, S, K)
    Dt, Ut = block.D.transpose(0, 2, 1), block.U.transpose(0, 2, 1)  # (n_c, 3, K)
    ADt = (At[:, :, None, :] * Dt[:, None, :, :]).reshape(n_c, 3 * S, K)
    AUt = (At[:, :, None, :] * Ut[:, None, :, :]).reshape(n_c, 3 * S, K)
    MAt = At @ M  # (n_z, n_c, S, K) = (M A)ᵀ
    G = np.einsum("csm,zctm->czst", At, MAt)
    for pb, (sa, sb) in enumerate(plan.element_pairs):
        half = 0.5 if sa == sb else 1.0
        values[np.ix_(cs, plan.ang0 + pb * plan.n_ang + members)] = G[:, :, sa, sb] * (half * norms)
    P = make_P(M)  # M is no longer needed: P takes its buffer
    Vt = (AUt @ P).reshape(n_z, n_c, S, 3, K)
    Vt *= scales[:, None, None, None, None]
    Dt, Ut = Dt[None, :, None], Ut[None, :, None]  # (1, n_c, 1, 3, K)
    row = lambda x: x[None, :, None, None, :]  # noqa: E731  (n_c, K) -> (1, n_c, 1, 1, K)
    inv_r = 1.0 / block.r
    H = Dt * (row(da * inv_r) * MAt[:, :, :, None, :])  # (n_z, n_c, S, 3, K)
    VU = np.multiply(Vt[:, :, :, 0], Ut[:, :, :, 0])  # U_m · V(m): (n_z, n_c, S, K)
    VU += Vt[:, :, :, 1] * Ut[:, :, :, 1]
    VU += Vt[:, :, :, 2] * Ut[:, :, :, 2]
    Vt -= Ut * VU[:, :, :, None, :]
    Vt *= row(a * inv_r)
    H += Vt
    if B_hat is not None:
        N = np.multiply(C, B_hat, out=P)
        NADt = np.concatenate([At, ADt], axis=1) @ N  # (n_z, n_c, 4S, K)
        H += Dt * (row(a) * NADt[:, :, :S, None, :])
        H -= row(a) * NADt[:, :, S:].reshape(n_z, n_c, S, 3, K)
    H *= norms[:, None, None, None, None]
    rows = block.entries[block.valid]
    for pb, (sa, sb) in enumerate(plan.element_pairs):
        d = onehot[None, :, None, :, sa] * H[:, :, sb]  # (n_z, n_c, 3, K)
        if sa != sb:
            d += onehot[None, :, None, :, sb] * H[:, :, sa]
        columns = plan.ang0 + pb * plan.n_ang + members
        d = d.transpose(1, 3, 2, 0)[block.valid]  # (n_valid, 3, n_z)
        if np.array_equal(columns, np.arange(columns[0], columns[0] + len(columns))):
            entry[rows, :, columns[0]:columns[0] + len(columns)] = d
        else:
            entry[rows[:, None, None], np.arange(3)[None, :, None], columns[None, None, :]] = d


# ----------------------------------------------------------------- entry points
def fast_features(acsf, i, j, vectors, distances, species, derivatives):
    """Same contract as :func:`nnptutor.descriptors.acsf.reference_features`."""
    plan = _plan(acsf)
    n_atoms = len(species)
    values = np.zeros((n_atoms, acsf.n_features))
    entry = np.zeros((len(i), 3, acsf.n_features)) if derivatives else None
    fc, dfc, drows = _radial(acsf, plan, i, j, distances, species, values, derivatives)
    if derivatives:
        _radial_entry(plan, j, vectors, distances, species, drows, entry)
    if plan.n_ang == 0:
        return values, entry
    ws, s_entry = _workspace(), species[j]
    counts = np.bincount(i, minlength=n_atoms)
    if derivatives:
        for cs, entries, valid in _padded_blocks(counts, BLOCK_SIZE, 2):
            block = _Block(plan, ws, entries, valid, vectors, distances, s_entry)
            _angular_block(plan, ws, block, cs, fc, dfc, values, entry)
        return values, entry
    if np.any((counts >= 2) & (counts <= TRIPLET_MAX_K)):
        _triplet_features(plan, ws, counts, j, vectors, distances, species, fc, values)
    # cyclic bands hold half a K×K matrix: twice the centres per block
    for cs, entries, valid in _padded_blocks(counts, 2 * BLOCK_SIZE, TRIPLET_MAX_K + 1):
        g = _cyclic_geometry(plan, ws, entries, valid, vectors, distances, s_entry)
        B_of = {eta: _triplet_cutoff(plan, ws, n, eta, g.y, False)[0]
                for n, eta in enumerate(plan.g4_etas)}
        _cyclic_features(plan, ws, cs, g, fc, values, B_of)
    return values, entry


def _vjp_block(plan, ws, cs, entries, valid, vectors, distances, species_of_entry):
    """What the backward pass keeps of one block: its cyclic geometry (cos θ copied), D and
    U (n_c, K, 3), and {η: (B, B̂)} copies, each (n_c, n_d K)."""
    g = _cyclic_geometry(plan, ws, entries, valid, vectors, distances, species_of_entry)
    g.cs, g.cos = cs, g.cos.copy()
    g.D = vectors[g.entries] * g.valid[..., None]
    g.U = g.D / g.r[..., None]
    g.cutoffs = {eta: tuple(x.copy() for x in _triplet_cutoff(plan, ws, "_v", eta, g.y, True))
                 for eta in plan.g4_etas}
    del g.y  # a workspace buffer, overwritten by the next block
    return g


def _vjp_nbytes(plan, n_c, K):
    """Memory [bytes] that :func:`_vjp_block` keeps for a block of n_c centres, K neighbours."""
    K += 1 - K % 2
    return 8 * n_c * ((K - 1) // 2 * K * (1 + 2 * len(plan.g4_etas)) + 12 * K)


def fast_features_with_vjp(acsf, i, j, vectors, distances, species, n_atoms,
                           cache_bytes=None):
    """Features and ``vjp(dE_dG) -> dE/dR``; see :meth:`ACSF.compute_with_vjp` (step 8).

    Parameters
    ----------
    acsf : ACSF
    i, j : ndarray of int, shape (n_pairs,)
        Neighbour list (centre, neighbour), sorted by i.
    vectors : ndarray, shape (n_pairs, 3)
        D = R_j − R_i (+ periodic shift) [Å]; ``distances`` (n_pairs,) their norms [Å].
    species : ndarray of int, shape (n_atoms,)
        Element index of every atom.
    n_atoms : int
    cache_bytes : int, optional
        Cap on the geometry kept for the backward pass (default :data:`VJP_CACHE_BYTES`);
        blocks beyond it are recomputed there (same numbers).

    Returns
    -------
    values : ndarray, shape (n_atoms, n_features)
    vjp : callable
        dE_dG (n_atoms, n_features) [eV / feature unit] → dE/dR (n_atoms, 3) [eV/Å]; may be
        called any number of times.
    """
    plan = _plan(acsf)
    values = np.zeros((n_atoms, acsf.n_features))
    fc, dfc, drows = _radial(acsf, plan, i, j, distances, species, values, True)
    blocks = []  # kept geometry, or (cs, entries, valid) of a block to recompute
    if plan.n_ang:
        budget = VJP_CACHE_BYTES if cache_bytes is None else cache_bytes
        ws, s_entry = _workspace(), species[j]
        for cs, entries, valid in _padded_blocks(np.bincount(i, minlength=n_atoms), BLOCK_SIZE, 2):
            size = _vjp_nbytes(plan, *entries.shape)
            if size <= budget:
                budget -= size
                g = _vjp_block(plan, ws, cs, entries, valid, vectors, distances, s_entry)
                blocks.append(g)
                B_of = {eta: B for eta, (B, _) in g.cutoffs.items()}
            else:
                g = _cyclic_geometry(plan, ws, entries, valid, vectors, distances, s_entry)
                blocks.append((cs, entries, valid))
                B_of = {eta: _triplet_cutoff(plan, ws, n, eta, g.y, False)[0]
                        for n, eta in enumerate(plan.g4_etas)}
            _cyclic_features(plan, ws, cs, g, fc, values, B_of)

    def vjp(dE_dG):
        dE_dG = np.asarray(dE_dG, dtype=float)
        if dE_dG.shape != values.shape:
            raise ValueError(f"dE_dG has shape {dE_dG.shape}; expected {values.shape}")
        s_j = species[j]
        w = dE_dG[:, : plan.ang0].reshape(n_atoms, plan.n_el, plan.n_rad)[i, s_j]
        grad = (np.einsum("pf,fp->p", w, drows) / distances)[:, None] * vectors  # dE/dD_p
        ws = _workspace()
        for g in blocks:
            if isinstance(g, tuple):
                g = _vjp_block(plan, ws, *g, vectors, distances, s_j)
            grad[g.entries[g.valid]] += _angular_block_vjp(plan, ws, g, fc, dfc, dE_dG)[g.valid]
        return scatter_pair_gradients(i, j, grad, n_atoms)

    return values, vjp


def _angular_block_vjp(plan, ws, g, fc, dfc, dE_dG):
    """dE/dD_m (n_c, K, 3) [eV/Å] from the angular features of one block.

    With Ω_mk = Σ_z ω_z C_z(cos θ_mk) (ω = dE/dG · 2^(1−ζ)), M₁ = BΩ, M₂ = B̂Ω, M₃ = BΩ'
    (symmetric K×K), the derivative of Σ_k a_m a_k B_mk Ω_mk with respect to D_m is
    α_m D_m + (a_m/r_m)(M₃ (a∘U))_m − a_m (M₂ (a∘D))_m with
    α_m = (a'_m/r_m)(M₁ a)_m + a_m (M₂ a)_m − (a_m/r_m²) U_m·(M₃ (a∘U))_m.
    """
    n_c, K = g.r.shape
    j, k, jk, kj = _cyclic_pairs(K)
    pairs = None
    if plan.n_el > 1:  # element pair of each triplet (padding: any, a = 0 there)
        s = np.maximum(g.species, 0)
        pairs = plan.pair_index[np.take(s, j, axis=1), np.take(s, k, axis=1)]
    inv_r = 1.0 / g.r
    alpha, grad = np.zeros((n_c, K)), np.zeros((n_c, K, 3))
    for kind, eta, members, zls, norms in plan.groups:
        a, da = _pair_weights(plan, g.r, fc, dfc, eta, g.entries, g.valid)
        omega = dE_dG[g.cs][:, _columns(plan, members, len(plan.element_pairs))] * norms
        Om = _omega(plan, ws, zls, omega, g.cos, pairs)  # (2, n_c, n_t): Ω, Ω'
        M = ws.get("M_v", (3, n_c, len(j)))
        if kind == "G4":
            B, B_hat = g.cutoffs[eta]
            np.multiply(Om[0], B, out=M[0])
            np.multiply(Om[0], B_hat, out=M[1])
            np.multiply(Om[1], B, out=M[2])
        else:  # G5: B = 1 for j ≠ k
            M[0], M[1], M[2] = Om[0], 0.0, Om[1]
        full = ws.get("full_v", (3, n_c, K * K))
        full[..., jk] = M
        full[..., kj] = M
        full[..., :: K + 1] = 0.0
        aU = a[..., None] * g.U
        R = np.concatenate([a[..., None], a[..., None] * g.D, aU], axis=2)  # (n_c, K, 7)
        P = np.ascontiguousarray(R.transpose(0, 2, 1)) @ full.reshape(3, n_c, K, K)
        M1a, M2a, M2aD, M3aU = P[0, :, 0], P[1, :, 0], P[1, :, 1:4], P[2, :, 4:7]
        M3aU = M3aU.transpose(0, 2, 1)  # (n_c, K, 3)
        U_M3aU = np.einsum("cma,cma->cm", g.U, M3aU)
        alpha += (da * inv_r) * M1a + a * M2a - (a * inv_r**2) * U_M3aU
        grad += (a * inv_r)[..., None] * M3aU - a[..., None] * M2aD.transpose(0, 2, 1)
    grad += alpha[..., None] * g.D
    return grad


def _omega(plan, ws, zls, omega, cos, pairs):
    """Ω = Σ_z ω_z (1 + λ_z cos θ)^ζ_z and Ω' = dΩ/dcos θ per triplet, as (2, n_c, n_t).

    omega : (n_c, n_pb, n_z) weights of the (ζ, λ) = plan.zl[zls]; cos : (n_c, n_t);
    pairs : (n_c, n_t) element pair of each triplet, or None with one element.
    """
    out = ws.get("Om_v", (2,) + cos.shape)
    out.fill(0.0)
    chains = {}
    for n, z in enumerate(zls):
        zeta, lam = plan.zl[z]
        tag = "v+" if lam > 0 else "v-"
        if lam not in chains:
            base = ws.get(f"base{tag}", cos.shape)
            np.add(1.0, cos, out=base) if lam > 0 else np.subtract(1.0, cos, out=base)
            if lam in plan.clip:
                np.maximum(base, 0.0, out=base)
            chains[lam] = {1: base}
        powers = chains[lam]
        w = omega[:, :, n]
        w = w[:, :1] if pairs is None else np.take_along_axis(w, pairs, axis=1)
        if float(zeta).is_integer():
            C, dC = _power(int(zeta), powers, ws, tag), _power(int(zeta) - 1, powers, ws, tag)
        else:
            C, dC = powers[1] ** zeta, powers[1] ** (zeta - 1)
        out[0] += w * C
        out[1] += (w * (zeta * lam)) * dC
    return out
