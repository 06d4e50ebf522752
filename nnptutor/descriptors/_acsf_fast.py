r"""The fast ACSF path: the reference's numbers (to 1e-12), several times faster than DScribe.

Pure numpy. The reference (:func:`.acsf.reference_features`) evaluates exp, cos and a
power for every triplet and parameter; here the same sums are rearranged into a few large,
cheap numpy operations (docs/acsf.md explains each step):

1. **Blocks of centres** with padded neighbour lists (n_c, K), sorted by neighbour count.
2. **Sums as contractions**: G4 = ½ Σ_jk a_j a_k B_jk C_jk, a_j = e^{−η r_ij²} f_c(r_ij),
   B_jk = e^{−η r_jk²} f_c(r_jk), C_jk = (1 + λ cos θ_ijk)^ζ: one matrix product per η.
3. **No transcendental function per triplet**: B is a polynomial in r_jk² (cosine cutoff).
4. **Integer ζ by repeated squaring**, shared by every parameter.
5. **Cyclic bands** (features): with K odd each pair {j, k} is (j, j + d mod K) once, so
   cos θ_jk, r_jk² and a_j a_k are elementwise products of strided views.
6. **Flat triplets** for centres with few neighbours (molecules), a bincount per function.
7. **Derivatives as products with K×K matrices**, Cartesian vectors only at the end.
8. **Forces without the derivative array**: dE/dG contracted into one weight per triplet.
9. **Reused buffers** (:class:`Workspace`): no page faults for fresh arrays per block.

Taught in notebooks/03_symmetry_functions.ipynb, optional section "How the fast path works".
"""
from __future__ import annotations

import math
import threading
from functools import lru_cache

import numpy as np
from numpy.polynomial import Chebyshev, Polynomial

from nnptutor.cutoffs import get_cutoff
from nnptutor.descriptors.base import scatter_pair_gradients

BLOCK_SIZE = 1 << 16  #: entries of one (n_c, K, K) matrix per block: 512 kB, cache-sized
#: Centres with at most this many neighbours take the flat triplet path (features only);
#: measured on 1000 ethanol molecules (K = 8) and fcc Cu (K ≈ 78), benchmarks/README.md.
TRIPLET_MAX_K = 10
TRIPLET_CHUNK = 1 << 15  #: triplets per chunk of the flat path (its vectors stay in cache)


class Workspace:
    """Named scratch arrays reused from block to block (step 9): ``get(name, shape)`` is an
    uninitialised view into the buffer kept under that name (arrays alive at the same time
    need different names)."""

    def __init__(self):
        self._buffers = {}

    def get(self, name, shape):
        size = math.prod(shape)
        if name not in self._buffers or self._buffers[name].size < size:
            self._buffers[name] = np.empty(size)
        return self._buffers[name][:size].reshape(shape)


_THREAD = threading.local()


def _workspace() -> Workspace:
    """This thread's workspace, kept between calls (its page faults are paid once)."""
    if not hasattr(_THREAD, "workspace"):
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
    """out = Σ_n coef[n] y^n by Horner's rule, in place (len(coef) ≥ 2)."""
    np.multiply(y, coef[-1], out=out)
    out += coef[-2]
    for c in coef[-3::-1]:
        np.multiply(out, y, out=out)
        out += c
    return out


def _triplet_cutoff(plan, ws, tag, eta, y, derivatives):
    """B = f_c(r_jk) e^{−η r_jk²} and B̂ = 2 dB/d(r_jk²) [Å⁻²] (None without derivatives)
    from y = 2 r_jk²/r_c² − 1 clamped at 1 (y = 1 gives B = B̂ = 0), any shape."""
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
    else:  # directly, from r_jk = √x (x > 0: y > −1 for any two distinct neighbours)
        x = (y + 1.0) * (plan.r_cut**2 / 2)
        fc, dfc = plan.cutoff(np.sqrt(x), plan.r_cut)
        gauss = np.exp(-eta * x)
        np.multiply(fc, gauss, out=B)
        if derivatives:
            B_hat[...] = gauss * (dfc / np.sqrt(x) - 2 * eta * fc)
    return B, B_hat


class _Plan:
    """What depends on the parameters only: the distinct (ζ, λ) ``zl``, and ``groups`` of
    (kind, η, feature columns, zl indices, 2^(1−ζ)) that share a_j and B_jk."""

    def __init__(self, acsf):
        self.r_cut, self.cutoff = acsf.r_cut, get_cutoff(acsf.cutoff)
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
        self.polynomials = {eta: cutoff_gaussian_polynomial(eta, self.r_cut)
                            for eta in self.g4_etas if acsf.cutoff == "cosine"}
        self.clip = {lam for zeta, lam in self.zl  # bases clipped at 0: |cos θ| ≤ 1 + ε
                     if not float(zeta).is_integer()}
        self.element_pairs = [(a, b) for a in range(self.n_el) for b in range(a + 1)]
        e = np.arange(self.n_el)
        high, low = np.maximum.outer(e, e), np.minimum.outer(e, e)
        self.pair_index = high * (high + 1) // 2 + low  # (a, b) -> index in element_pairs


def _plan(acsf) -> _Plan:
    """The descriptor's plan, kept on it while its parameters are unchanged."""
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
    """Write base**n into ``out`` (one product of two known powers if there are, else a
    squaring for even n, a product with base for odd n); remember it."""
    known = [m for m in powers if n - m in powers]
    if n in powers:
        np.copyto(out, powers[n])
    elif n == 0:
        out.fill(1.0)
    elif known:  # e.g. base**15 = base**8 · base**7 when both are known
        np.multiply(powers[max(known)], powers[n - max(known)], out=out)
    elif n % 2 == 0:
        half = _power(n // 2, powers, ws, tag)
        np.multiply(half, half, out=out)
    else:
        np.multiply(_power(n - 1, powers, ws, tag), powers[1], out=out)
    powers.setdefault(n, out)


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
    product each, from the previous slot of the same λ (b² (b B) for ζ = 4 after ζ = 2)."""
    last = {}  # λ -> (exponent, slot)
    for n, z in enumerate(zls):
        zeta, lam = plan.zl[z]
        tag, powers = ("+" if lam > 0 else "-"), chains[lam]
        if not float(zeta).is_integer():
            np.multiply(np.power(powers[1], zeta - 1), B, out=out[n])
            continue
        e = int(zeta) - 1
        m, previous = last.get(lam, (0, B))
        if m > e:
            m, previous = 0, B
        np.multiply(_power(e - m, powers, ws, tag), previous, out=out[n])
        last[lam] = (e, out[n])
    return out


def _select(stack, zls):
    """stack[zls], without a copy when zls are consecutive."""
    consecutive = np.array_equal(zls, np.arange(zls[0], zls[0] + len(zls)))
    return stack[zls[0]:zls[0] + len(zls)] if consecutive else stack[zls]


# ----------------------------------------------------------------- step 1: blocks of centres
def _padded_blocks(counts, block_size, min_count):
    """Yield (centres, entries, valid) for blocks of centres with min_count ≤ K neighbours
    (min_count ≥ 2), sorted by K: ``entries`` (n_c, K) neighbour-list rows (0 where ``valid``
    is False: padding), at most ``block_size`` entries in a K×K matrix per block."""
    starts = np.cumsum(counts) - counts
    centres = np.flatnonzero(counts >= max(min_count, 2))
    order = centres[np.argsort(counts[centres], kind="stable")]
    pos = 0
    while pos < len(order):  # as many centres as fit: n_c K_max² ≤ block_size (at least one)
        size = np.arange(1, len(order) - pos + 1) * counts[order[pos:]] ** 2
        n_c = max(1, int(np.searchsorted(size, block_size, side="right")))
        cs = order[pos:pos + n_c]
        K = counts[cs[-1]]
        k = np.arange(K)
        valid = k[None, :] < counts[cs][:, None]
        yield cs, np.where(valid, starts[cs][:, None] + k[None, :], 0), valid
        pos += n_c


def _radial_rows(acsf, distances, fc, dfc=None):
    """The terms of :func:`.acsf.radial_terms` as rows (n_rad, n_pairs), and with ``dfc``
    (f_c' [Å⁻¹]) their derivatives d/dr [Å⁻¹] (else None)."""
    rows, drows = [fc], [dfc]
    for eta, r_s in acsf.g2:
        x = distances - r_s
        gauss = np.exp(-eta * x * x)
        rows.append(gauss * fc)
        if dfc is not None:
            drows.append(gauss * (dfc - 2 * eta * x * fc))
    for kappa in acsf.g3:
        cos = np.cos(kappa * distances)
        rows.append(cos * fc)
        if dfc is not None:
            drows.append(cos * dfc - kappa * np.sin(kappa * distances) * fc)
    return np.array(rows), (None if dfc is None else np.array(drows))


def _radial(acsf, plan, i, j, vectors, distances, species, values, entry):
    """G1–G3 into ``values`` (one bincount per function over (centre, neighbour element))
    and, with ``entry``, dG/dD_p = (D_p / r_p) dG/dr_p into its radial columns.

    Returns f_c and f_c' (None without ``entry``) per pair.
    """
    fc, dfc = plan.cutoff(distances, plan.r_cut)
    dfc = None if entry is None else dfc
    rows, drows = _radial_rows(acsf, distances, fc, dfc)
    n_keys = len(values) * plan.n_el
    key = i * plan.n_el + species[j]
    sums = np.array([np.bincount(key, weights=row, minlength=n_keys) for row in rows])
    values[:, : plan.ang0] = sums.T.reshape(len(values), plan.ang0)
    if entry is not None:
        unit, dT = vectors / distances[:, None], np.ascontiguousarray(drows.T)
        for s in range(plan.n_el):
            rows = np.flatnonzero(species[j] == s)
            columns = slice(s * plan.n_rad, (s + 1) * plan.n_rad)
            entry[rows, :, columns] = unit[rows, :, None] * dT[rows, None]
    return fc, dfc


def _pair_weights(r, fc_entry, dfc_entry, eta, entries, valid):
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
    values[np.ix_(cs, _columns(plan, members, n_pb).ravel())] = G.reshape(n_c, -1)


# ----------------------------------------------------------------- step 5: cyclic bands
def _partner(row, shape):
    """View (n_c, n_d, K) of a doubled row (n_c, 2K): [c, d, j] = row[c, j + d + 1]."""
    s0, s1 = row.strides
    return np.lib.stride_tricks.as_strided(row[:, 1:], shape=shape, strides=(s0, s1, s1),
                                           writeable=False)


class _Block:
    """One block as K×K matrices: D (n_c, K, 3) [Å], r, U, species (−1 padding), cos θ_jk
    and y = 2 r_jk²/r_c² − 1 (n_c, K, K), clamped at 1 and 1 on the diagonal (B = 0)."""

    def __init__(self, plan, ws, entries, valid, vectors, distances, species_of_entry):
        n_c, K = entries.shape
        self.entries, self.valid = entries, valid
        self.r = np.where(valid, distances[entries], 2 * plan.r_cut)  # padding beyond r_c
        self.D = vectors[entries] * valid[..., None]
        self.U = self.D / self.r[..., None]
        self.species = np.where(valid, species_of_entry[entries], -1)
        self.cos = np.matmul(self.U, self.U.transpose(0, 2, 1), out=ws.get("cos", (n_c, K, K)))
        c = 2.0 / plan.r_cut**2  # y = [−2cD, e, 1]·[D, 1, e] with e = c r² − ½
        e = (c * self.r**2 - 0.5)[..., None]
        one = np.ones_like(e)
        left = np.concatenate([-2 * c * self.D, e, one], axis=2)
        right = np.concatenate([self.D, one, e], axis=2)
        self.y = np.matmul(left, right.transpose(0, 2, 1), out=ws.get("y", (n_c, K, K)))
        np.minimum(self.y, 1.0, out=self.y)
        self.y.reshape(n_c, K * K)[:, :: K + 1] = 1.0


def _cyclic_features(plan, ws, cs, entries, valid, vectors, distances, species_of_entry,
                     fc, values):
    """Angular features of one block on cyclic bands (step 5): K made odd by one padding
    neighbour, slot (d, j) of an (n_c, (K − 1)/2, K) array holds the pair (j, j + d + 1 mod K);
    per-neighbour rows are stored twice so that the partner values are strided views."""
    n_c, K = entries.shape
    if K % 2 == 0:
        entries = np.concatenate([entries, np.zeros((n_c, 1), entries.dtype)], axis=1)
        valid = np.concatenate([valid, np.zeros((n_c, 1), bool)], axis=1)
        K += 1
    shape = (n_c, (K - 1) // 2, K)
    rows = ws.get("cyc_rows", (5 + plan.n_el, n_c, 2 * K))
    Ux, Uy, Uz, r_row, e, A = rows[0], rows[1], rows[2], rows[3], rows[4], rows[5:]
    r = np.where(valid, distances[entries], 2 * plan.r_cut)
    for comp, row in zip(vectors.T, (Ux, Uy, Uz)):
        np.multiply(comp[entries], np.divide(valid, r), out=row[:, :K])
    r_row[:, :K] = r
    c = 2.0 / plan.r_cut**2  # y = 2 r_jk²/r_c² − 1 = e_j + e_k − 2c r_j r_k cos θ_jk
    np.multiply(c * r, r, out=e[:, :K])
    e[:, :K] -= 0.5
    rows[:5, :, K:] = rows[:5, :, :K]
    cos = np.multiply(Ux[:, None, :K], _partner(Ux, shape), out=ws.get("cos_p", shape))
    tmp = ws.get("cyc_tmp", shape)
    for row in (Uy, Uz):
        cos += np.multiply(row[:, None, :K], _partner(row, shape), out=tmp)
    y = np.multiply((-2.0 * c) * r[:, None, :], _partner(r_row, shape), out=ws.get("y_p", shape))
    y *= cos
    y += e[:, None, :K]
    y += _partner(e, shape)
    np.minimum(y, 1.0, out=y)
    cos, y = cos.reshape(n_c, -1), y.reshape(n_c, -1)
    B_of = {eta: _triplet_cutoff(plan, ws, n, eta, y, False)[0]
            for n, eta in enumerate(plan.g4_etas)}
    C, _ = _angular_stacks(plan, ws, cos)
    species = np.where(valid, species_of_entry[entries], -1)
    n_pb = len(plan.element_pairs)
    X = ws.get("X_p", (n_c, n_pb) + shape[1:])
    for kind, eta, members, zls, norms in plan.groups:
        a, _ = _pair_weights(r, fc, None, eta, entries, valid)
        for s in range(plan.n_el):  # a_j of the neighbours of element s
            np.multiply(a, species == s, out=A[s, :, :K])
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
def _triplet_chunks(counts, starts, max_k):
    """Yield (centres, p, q) for centres with 2 ≤ K ≤ max_k, grouped by K: p, q (n_c,
    K(K−1)/2) the neighbour-list rows of neighbours j < k."""
    for K in np.unique(counts[(counts >= 2) & (counts <= max_k)]):
        cs = np.flatnonzero(counts == K)
        tj, tk = np.triu_indices(int(K), 1)
        per = max(1, TRIPLET_CHUNK // len(tj))
        for lo in range(0, len(cs), per):
            first = starts[cs[lo:lo + per], None]
            yield cs[lo:lo + per], first + tj, first + tk


def _triplet_features(plan, ws, counts, j, vectors, distances, species, fc, values):
    """Angular features of the centres with 2 ≤ K ≤ TRIPLET_MAX_K neighbours (step 6): long
    gathers over all their triplets j < k, one bincount per function into (centre, pair)."""
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
        dot = ws.get("t_dot", p.shape)
        dot.fill(0.0)
        for comp in (Dx, Dy, Dz):
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
    """Features and dG/dD of one :class:`_Block`, group by group (:func:`_angular_derivatives`)."""
    n_c, K = block.r.shape
    C, chains = _angular_stacks(plan, ws, block.cos)
    scales = np.array([zeta * lam for zeta, lam in plan.zl])  # dC/dcos θ = ζ λ (…)^(ζ−1)
    onehot = (block.species[..., None] == np.arange(plan.n_el)).astype(float)
    offdiag = np.broadcast_to(1.0 - np.eye(K), (n_c, K, K))  # G5: B = 1 for j ≠ k
    B_of = {}
    for kind, eta, members, zls, norms in plan.groups:
        a, da = _pair_weights(block.r, fc, dfc, eta, block.entries, block.valid)
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
        columns = plan.ang0 + pb * plan.n_ang + members
        values[np.ix_(cs, columns)] = G[:, :, sa, sb] * (half * norms)
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


def fast_features(acsf, i, j, vectors, distances, species, derivatives):
    """Same contract as :func:`nnptutor.descriptors.acsf.reference_features`."""
    plan = _plan(acsf)
    n_atoms = len(species)
    values = np.zeros((n_atoms, acsf.n_features))
    entry = np.zeros((len(i), 3, acsf.n_features)) if derivatives else None
    fc, dfc = _radial(acsf, plan, i, j, vectors, distances, species, values, entry)
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
        _cyclic_features(plan, ws, cs, entries, valid, vectors, distances, s_entry, fc, values)
    return values, entry


def fast_features_with_vjp(acsf, i, j, vectors, distances, species, n_atoms):
    """Features (n_atoms, n_features) and ``vjp(dE_dG)`` → dE/dR (n_atoms, 3) [eV/Å] for
    dE_dG (n_atoms, n_features) [eV / feature unit] (step 8; :meth:`ACSF.compute_with_vjp`);
    arguments as :func:`fast_features`."""
    values, _ = fast_features(acsf, i, j, vectors, distances, species, False)

    def vjp(dE_dG):
        dE_dG = np.asarray(dE_dG, dtype=float)
        if dE_dG.shape != values.shape:
            raise ValueError(f"dE_dG has shape {dE_dG.shape}; expected {values.shape}")
        plan, ws, s_j = _plan(acsf), _workspace(), species[j]
        fc, dfc = plan.cutoff(distances, plan.r_cut)
        drows = _radial_rows(acsf, distances, fc, dfc)[1]
        w = dE_dG[:, : plan.ang0].reshape(n_atoms, plan.n_el, plan.n_rad)[i, s_j]
        grad = (np.einsum("pf,fp->p", w, drows) / distances)[:, None] * vectors  # dE/dD_p
        counts = np.bincount(i, minlength=n_atoms) if plan.n_ang else np.zeros(0, int)
        for cs, entries, valid in _padded_blocks(counts, BLOCK_SIZE, 2):
            block = _Block(plan, ws, entries, valid, vectors, distances, s_j)
            g = _angular_block_vjp(plan, ws, block, cs, fc, dfc, dE_dG)
            grad[entries[valid]] += g[valid]
        return scatter_pair_gradients(i, j, grad, n_atoms)

    return values, vjp


def _angular_block_vjp(plan, ws, block, cs, fc, dfc, dE_dG):
    """dE/dD_m (n_c, K, 3) [eV/Å] from the angular features of one :class:`_Block`.

    With Ω_mk = Σ_z ω_z C_z(cos θ_mk) (ω = dE/dG · 2^(1−ζ)), M₁ = BΩ, M₂ = B̂Ω, M₃ = BΩ'
    (symmetric K×K), the derivative of Σ_k a_m a_k B_mk Ω_mk with respect to D_m is
    α_m D_m + (a_m/r_m)(M₃ (a∘U))_m − a_m (M₂ (a∘D))_m with
    α_m = (a'_m/r_m)(M₁ a)_m + a_m (M₂ a)_m − (a_m/r_m²) U_m·(M₃ (a∘U))_m.
    """
    n_c, K = block.r.shape
    pairs = None
    if plan.n_el > 1:  # element pair of each triplet (padding: any, a = 0 there)
        s = np.maximum(block.species, 0)
        pairs = plan.pair_index[s[:, :, None], s[:, None, :]]
    inv_r = 1.0 / block.r
    alpha, grad = np.zeros((n_c, K)), np.zeros((n_c, K, 3))
    offdiag = np.broadcast_to(1.0 - np.eye(K), (n_c, K, K))
    C, chains = _angular_stacks(plan, ws, block.cos)
    B_of = {}
    for kind, eta, members, zls, norms in plan.groups:
        a, da = _pair_weights(block.r, fc, dfc, eta, block.entries, block.valid)
        omega = dE_dG[cs][:, _columns(plan, members, len(plan.element_pairs))] * norms
        Om = _omega(plan, ws, zls, omega, C, chains, pairs)  # (2, n_c, K, K): Ω, Ω'
        M = ws.get("M_v", (3, n_c, K, K))
        if kind == "G4":
            if eta not in B_of:
                B_of[eta] = _triplet_cutoff(plan, ws, f"_v{len(B_of)}", eta, block.y, True)
            B, B_hat = B_of[eta]
            np.multiply(Om[0], B, out=M[0])
            np.multiply(Om[0], B_hat, out=M[1])
            np.multiply(Om[1], B, out=M[2])
        else:  # G5: B = 1 for j ≠ k
            np.multiply(Om[0], offdiag, out=M[0])
            M[1] = 0.0
            np.multiply(Om[1], offdiag, out=M[2])
        aU = a[..., None] * block.U
        R = np.concatenate([a[..., None], a[..., None] * block.D, aU], axis=2)  # (n_c, K, 7)
        P = np.ascontiguousarray(R.transpose(0, 2, 1)) @ M  # (3, n_c, 7, K) = (M R)ᵀ
        M1a, M2a, M2aD, M3aU = P[0, :, 0], P[1, :, 0], P[1, :, 1:4], P[2, :, 4:7]
        M3aU = M3aU.transpose(0, 2, 1)  # (n_c, K, 3)
        U_M3aU = np.einsum("cma,cma->cm", block.U, M3aU)
        alpha += (da * inv_r) * M1a + a * M2a - (a * inv_r**2) * U_M3aU
        grad += (a * inv_r)[..., None] * M3aU - a[..., None] * M2aD.transpose(0, 2, 1)
    grad += alpha[..., None] * block.D
    return grad


def _omega(plan, ws, zls, omega, C, chains, pairs):
    """Ω = Σ_z ω_z (1 + λ_z cos θ)^ζ_z and Ω' = dΩ/dcos θ, as (2, n_c, K, K).

    omega : (n_c, n_pb, n_z) weights of (ζ, λ) = plan.zl[zls]; C, chains : from
    :func:`_angular_stacks`; pairs : (n_c, K, K) element pair of each triplet, or None.
    """
    out, term = ws.get("Om_v", (2,) + C.shape[1:]), ws.get("Om_term", C.shape[1:])
    out.fill(0.0)
    for n, z in enumerate(zls):
        zeta, lam = plan.zl[z]
        if pairs is None:
            w = omega[:, 0, n, None, None]
        else:
            w = np.take_along_axis(omega[:, :, n], pairs.reshape(len(pairs), -1), axis=1)
            w = w.reshape(pairs.shape)
        if float(zeta).is_integer():
            dC = _power(int(zeta) - 1, chains[lam], ws, "+" if lam > 0 else "-")
        else:
            dC = chains[lam][1] ** (zeta - 1)
        out[0] += np.multiply(w, C[z], out=term)
        out[1] += np.multiply(w * (zeta * lam), dC, out=term)
    return out
