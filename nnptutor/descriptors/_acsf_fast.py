r"""The fast ACSF path: the same numbers as the reference, 3–4× faster than DScribe.

Pure numpy. The reference implementation (:func:`.acsf.reference_features`) builds one
row per triplet (i, j, k) and evaluates exp, cos and a power for each row and each
parameter. Here the same sums are reorganised so that numpy spends its time in a few
cheap, large operations. The tricks, in the order they appear below:

1. **Padded neighbour blocks.** For a centre with K neighbours, all triplet quantities are
   K×K matrices: cos θ_ijk = U Uᵀ (U the unit vectors) and r_jk² from D Dᵀ. A block of
   centres is an array (n_c, K, K) built by two batched matrix products instead of index
   lists. Centres are sorted by neighbour count before blocking, so padding (extra
   neighbours with zero weight) stays small.
2. **Sums as contractions.** G4 = ½ Σ_jk a_j a_k B_jk C_jk with a_j = e^{−η r_ij²} f_c(r_ij)
   (per pair, computed once), B_jk = e^{−η r_jk²} f_c(r_jk) and C_jk = (1 + λ cos θ)^ζ. For
   all (ζ, λ) at once this is one batched matrix product of (a aᵀ ∘ B) with the stack
   of C's: each C is used once, no per-parameter loop over triplets.
3. **No transcendental function per triplet.** B(r_jk) is smooth in x = r_jk², so it is
   evaluated as one polynomial in x (Chebyshev fit, accurate to ~1e-15, checked when the
   fit is made), written as (1 − t)² q(t) with t = x / r_c² clamped at 1: it is *exactly*
   zero, with zero slope, beyond the cutoff. (The tanh³ cutoff is not smooth in x at
   x = 0, so there B is evaluated directly.)
4. **Integer ζ by repeated squaring.** (1 ± cos θ)^ζ for ζ = 1, 2, 4, 16 is a chain of
   squarings shared by all parameters, into preallocated buffers. The derivatives need
   B ∘ (1 + λ cos θ)^(ζ−1): made from those powers right where it is used, one product
   per ζ (B, b B, b² (b B), b¹² (b³ B)), not from a stack of (ζ − 1)-th powers.
5. **Derivatives as matrix products.** d/dD_m of the sums above is D_m × (matrix ·
   vector) + (matrix · (vector ∘ D)), so the K×K matrices are reused and only the final
   products carry the 3 Cartesian components.
6. **Half the triplets.** Without derivatives, only the unique pairs j < k (the upper
   triangle of each K×K matrix) are evaluated, packed into a vector.
7. **Reused buffers.** Every large array is a view into a buffer that lives for the whole
   call (:class:`Workspace`) and is filled with ``out=``: a fresh 0.5 MB array costs a page
   fault per 4 kB on first touch, which on a busy machine is slower than the arithmetic.
8. **Forces as one polynomial per centre.** For MD only dE/dR = Σ dE/dG · dG/dR is needed
   (:func:`fast_features_with_vjp`). With integer ζ, Σ_z w_z (1 + λ_z cos θ)^ζ_z is one
   polynomial in cos θ per centre, evaluated by Horner's rule on the packed triangle; the
   geometry and triplet cutoffs are kept from the forward pass (up to
   :data:`VJP_CACHE_BYTES`), so the backward pass is that polynomial, three products and
   one batched matrix product per block.
9. **Flat triplets for few neighbours.** With K ≤ :data:`TRIPLET_MAX_K` (molecules) the
   K×K blocks are tiny and numpy's per-call overhead dominates; features of such centres
   are computed on one flat list of all their triplets (j < k) instead: long vectorised
   gathers and products, one ``np.bincount`` per function (:func:`_triplet_features`).
   Radial terms without derivatives are likewise computed as rows (one per function) over
   all pairs, and the cosine cutoff without its derivative.
10. **Cyclic bands instead of a packed triangle.** Without derivatives, a block with K
    neighbours (made odd by one padding neighbour) has each unordered pair {j, k} exactly
    once as (j, j + d mod K), d = 1 … (K − 1)/2; with every per-neighbour row stored
    twice, the partner values are strided views, so D_j·D_k, cos θ, r_jk² and a_j a_k are
    plain elementwise products (:func:`_cyclic_features`): no K×K matrix products and no
    gathers into the triangle.

Taught in notebooks/03_symmetry_functions.ipynb, optional section "How the fast path works".
"""
from __future__ import annotations

import math
import threading
from functools import lru_cache

import numpy as np
from numpy.polynomial import Chebyshev, Polynomial

from nnptutor.cutoffs import get_cutoff

#: Entries of one (n_c, K, K) matrix per block: 2^16 float64 = 512 kB, so that the few
#: matrices a block needs stay in the processor's cache.
BLOCK_SIZE = 1 << 16


class Workspace:
    """Named scratch arrays, reused from block to block (trick 7).

    ``ws.get("B", shape)`` returns an uninitialised array of that shape, a view into a
    buffer kept under that name and grown when needed. Arrays that are alive at the same
    time must have different names.
    """

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
    """This thread's workspace, kept between calls.

    A small cell is one or two blocks, so a fresh workspace per call would pay the page
    faults of every buffer each time; kept, they are paid once per thread. The buffers are
    about 20 (features) to 60 (derivatives) arrays of at most BLOCK_SIZE entries.
    """
    ws = getattr(_THREAD, "workspace", None)
    if ws is None:
        ws = _THREAD.workspace = Workspace()
    return ws


# --------------------------------------------------------------------------------------
# trick 3: B(x) = f_c(√x) e^{−η x} as a polynomial in x = r_jk²
# --------------------------------------------------------------------------------------
@lru_cache(maxsize=64)
def cutoff_gaussian_polynomial(eta: float, r_cut: float):
    """Coefficients of q with f_c(√x) e^{−η x} = (1 − t)² q(y), t = x/r_c², y = 2t − 1.

    Cosine cutoff only: f_c = ½(1 + cos πs) = cos²(πs/2) with s = √t has a double zero at
    t = 1, and cos²(πs/2)/(1 − t)² = (π/2)² sinc²((1 − s)/2) / (1 + s)² is smooth, so a
    low-degree Chebyshev fit in y is accurate to rounding error.

    Returns
    -------
    ndarray or None
        Power-series coefficients of q in y (lowest first), or None if no fit of degree
        ≤ 48 reaches 1e-14 (then B is evaluated directly).
    """
    a = eta * r_cut**2

    def q(t):
        s = np.sqrt(np.clip(t, 0.0, 1.0))
        return (np.pi / 2) ** 2 * np.sinc((1 - s) / 2) ** 2 / (1 + s) ** 2 * np.exp(-a * t)

    fit = Chebyshev.interpolate(q, 48, domain=[0, 1])
    coef = fit.coef
    # keep the coefficients above the rounding noise of q (~1e-15) plus one
    significant = np.flatnonzero(np.abs(coef) > 5e-15 * np.abs(coef).max())
    degree = min(max(int(significant[-1]) + 1, 2), 48)
    power = Chebyshev(coef[: degree + 1]).convert(kind=Polynomial).coef  # in y ∈ [−1, 1]
    t = np.linspace(0, 1, 4001)
    exact = 0.5 * (np.cos(np.pi * np.sqrt(t)) + 1) * np.exp(-a * t)
    approx = np.polynomial.polynomial.polyval(2 * t - 1, power) * (1 - t) ** 2
    if np.max(np.abs(approx - exact)) > 1e-14:
        return None
    return power


def _horner(coef, y, out):
    """out = Σ_n coef[n] y^n by Horner's rule, in place (no temporary arrays)."""
    if len(coef) == 1:
        out.fill(coef[0])
        return out
    np.multiply(y, coef[-1], out=out)  # the first step without filling out with coef[-1]
    out += coef[-2]
    for c in coef[-3::-1]:
        np.multiply(out, y, out=out)
        out += c
    return out


def _triplet_cutoff(plan, ws, tag, eta, y, derivatives):
    """B_jk = f_c(r_jk) e^{−η r_jk²} and B̂_jk = 2 dB/d(r_jk²) on a block, diagonal zero.

    ``y`` = 2 r_jk²/r_c² − 1, already clamped at 1 (beyond the cutoff), either full
    (n_c, K, K) or packed (n_c, n_triangle). ``tag`` names the buffers (one per η). Returns
    arrays of the shape of ``y``; B̂ is None without derivatives.
    """
    coef = plan.polynomials.get(eta)
    B = ws.get(f"B{tag}", y.shape)
    B_hat = ws.get(f"B_hat{tag}", y.shape) if derivatives else None
    if coef is not None:
        one_minus = np.subtract(1.0, y, out=ws.get("one_minus", y.shape))  # = 2(1 − t)
        q = _horner(coef * 0.25, y, ws.get("q", y.shape))  # ¼ q(y): (1 − t)² = ¼ (1 − y)²
        np.multiply(one_minus, one_minus, out=B)
        B *= q
        if derivatives:
            # dB/dy = (1 − y)[(1 − y) q' − 2 q]; dy/dx = 2/r_c²; B̂ = 2 dB/dx
            dq = _horner(np.polynomial.polynomial.polyder(coef) * 0.25, y, ws.get("dq", y.shape))
            np.multiply(one_minus, dq, out=B_hat)
            q *= 2.0
            B_hat -= q
            B_hat *= one_minus
            B_hat *= 4.0 / plan.r_cut**2
    else:  # no accurate polynomial (tanh³ cutoff, or a sharp Gaussian): evaluate directly
        x = np.maximum((y + 1.0) * (plan.r_cut**2 / 2), 0.0)  # r_jk² [Å²]
        r = np.sqrt(x)
        fc, dfc = plan.cutoff(r, plan.r_cut)
        gauss = np.exp(-eta * x)
        np.multiply(fc, gauss, out=B)
        if derivatives:
            with np.errstate(divide="ignore", invalid="ignore"):
                B_hat[...] = np.where(r > 0, 2 * gauss * (dfc / (2 * r) - eta * fc), 0.0)
    if y.ndim == 3:  # full (n_c, K, K) matrices: j = k is not a triplet
        diag = np.arange(y.shape[-1])
        B[:, diag, diag] = 0.0
        if derivatives:
            B_hat[:, diag, diag] = 0.0
    return B, B_hat


# --------------------------------------------------------------------------------------
# the parameter-only part, built once per descriptor
# --------------------------------------------------------------------------------------
class _Plan:
    """Everything that depends on the descriptor's parameters, not on the structure.

    ``zl`` lists the distinct (ζ, λ) of G4 and G5 (one C matrix each); ``groups`` lists
    (kind, η, columns, zl indices, normalisations): all angular parameters that share η
    share a_j and B_jk and are contracted together.
    """

    def __init__(self, acsf):
        self.r_cut = acsf.r_cut
        self.cutoff = get_cutoff(acsf.cutoff)
        self.cutoff_name = acsf.cutoff
        self.n_el = len(acsf.elements)
        self.n_rad, self.n_ang = acsf.n_radial, acsf.n_angular
        self.ang0 = self.n_el * self.n_rad
        angular = [("G4", p) for p in acsf.g4] + [("G5", p) for p in acsf.g5]
        self.zl = sorted({(z, l) for _, (e, z, l) in angular})
        self.groups = []
        for kind in ("G4", "G5"):
            for eta in sorted({p[0] for k, p in angular if k == kind}):
                members = [n for n, (k, p) in enumerate(angular) if k == kind and p[0] == eta]
                zls = [self.zl.index((angular[n][1][1], angular[n][1][2])) for n in members]
                norms = np.array([2.0 ** (1 - angular[n][1][1]) for n in members])
                self.groups.append((kind, eta, np.array(members), np.array(zls), norms))
        #: distinct η of the G4 (one triplet cutoff B_jk each), ascending
        self.g4_etas = [eta for kind, eta, *_ in self.groups if kind == "G4"]
        self.polynomials = {}
        if acsf.cutoff == "cosine":
            for eta in self.g4_etas:
                self.polynomials[eta] = cutoff_gaussian_polynomial(eta, self.r_cut)
        #: λ whose base 1 + λ cos θ must be clipped at 0: |cos θ| can exceed 1 by rounding,
        #: harmless for integer ζ, NaN for ζ ∉ ℤ
        self.clip = {lam for zeta, lam in self.zl if not float(zeta).is_integer()}
        # element pairs (a, b), a >= b, in feature order
        self.element_pairs = [(a, b) for a in range(self.n_el) for b in range(a + 1)]
        self.pair_first = np.array([a for a, b in self.element_pairs])
        self.pair_second = np.array([b for a, b in self.element_pairs])


def _plan(acsf) -> _Plan:
    key = repr(acsf.to_dict())
    cached = getattr(acsf, "_fast_plan", None)
    if cached is None or cached[0] != key:
        acsf._fast_plan = (key, _Plan(acsf))
    return acsf._fast_plan[1]


# --------------------------------------------------------------------------------------
# trick 4: (1 + λ cos θ)^ζ for all (ζ, λ) by repeated squaring
# --------------------------------------------------------------------------------------
def _power(n, powers, ws, tag):
    """base**n for integer n ≥ 0, memoised in ``powers`` {exponent: array} (powers[1] = base).

    Even n: square of base**(n/2); odd n: base**m · base**(n−m) with m the largest power
    already known. So base**16 costs four squarings (base**2, base**4, base**8 on the
    way), and then base**15 = base**8 · base**4 · base**3 two more products.
    """
    if n not in powers:
        _power_into(ws.get(f"power{tag}_{n}", powers[1].shape), n, powers, ws, tag)
    return powers[n]


def _power_into(out, n, powers, ws, tag, remember=True):
    """Write base**n into ``out`` (a slot of a stack); remember it for later powers
    unless the caller will modify ``out`` in place."""
    if n in powers:
        np.copyto(out, powers[n])
        return
    if n == 0:
        out.fill(1.0)
    elif n % 2 == 0 and (n // 2 in powers or not any(n - m in powers for m in powers)):
        half = _power(n // 2, powers, ws, tag)
        np.multiply(half, half, out=out)
    elif n % 2 == 0:  # e.g. base**12 = base**8 · base**4 when those are known: one product
        m = max(m for m in powers if n - m in powers)
        np.multiply(powers[m], powers[n - m], out=out)
    else:
        m = max(e for e in powers if e < n)
        np.multiply(powers[m], _power(n - m, powers, ws, tag), out=out)
    if remember:
        powers[n] = out


def _angular_stacks(plan, ws, cos, derivatives, chains=None):
    """C[z] = (1 + λ cos θ)^ζ and E[z] = (1 + λ cos θ)^(ζ−1) for every (ζ, λ) in plan.zl.

    Returns arrays of shape (n_zl, n_c, K, K) (E is None without derivatives); the
    derivative is dC/dcos θ = ζ λ E (the factor ζ λ, from :func:`_angular_scales`, is
    applied by the caller to the much smaller products of E). Each power is written
    straight into its slot of the stack, a contiguous (n_c, K, K) array; all powers are
    shared between C and E.

    ``chains``: a dict that receives {λ: {exponent: (1 + λ cos θ)^exponent}} (the powers
    computed); with it, E is not formed (None), and :func:`_cutoff_power_stack` makes
    B ∘ E from these powers where it is needed.
    """
    shape = (len(plan.zl),) + cos.shape
    C = ws.get("C", shape)
    if chains is not None:
        derivatives = False
    else:
        chains = {}  # λ -> {exponent: (1 + λ cos θ)^exponent}
    E = ws.get("E", shape) if derivatives else None
    for z, (zeta, lam) in enumerate(plan.zl):
        tag = "+" if lam > 0 else "-"
        in_slot = False
        if lam not in chains:
            in_slot = zeta == 1  # C = the base itself: write it straight into its slot
            base = C[z] if in_slot else ws.get(f"base{tag}", cos.shape)
            if lam > 0:
                np.add(1.0, cos, out=base)
            else:
                np.subtract(1.0, cos, out=base)
            if lam in plan.clip:
                np.maximum(base, 0.0, out=base)
            chains[lam] = {1: base}
        powers = chains[lam]
        if in_slot:  # nothing modifies C in place, so later powers may read it
            if derivatives:
                E[z].fill(1.0)
        elif float(zeta).is_integer():
            _power_into(C[z], int(zeta), powers, ws, tag)
            if derivatives:  # nothing modifies E in place: its powers are shared too
                _power_into(E[z], int(zeta) - 1, powers, ws, tag)
        else:
            np.power(powers[1], zeta, out=C[z])
            if derivatives:
                np.power(powers[1], zeta - 1, out=E[z])
    return C, E


def _cutoff_power_stack(plan, ws, chains, zls, B, out):
    """out[n] = B ∘ (1 + λ cos θ)^(ζ−1) for (ζ, λ) = plan.zl[zls[n]], integer ζ.

    Each slot is one product, from the previous slot of the same λ where there is one:
    P_ζ = (1 + λ cos θ)^(ζ − ζ') P_ζ' (for ζ = 1, 2, 4, 16: B, b P_1, b² P_2, b¹² P_4, with
    b¹² = b⁸ b⁴ from the powers of C). Made right before its one use, so that it is still
    in the processor's cache there, instead of a stack E kept from the start of the block.

    chains : {λ: {exponent: array}} from :func:`_angular_stacks`; B : (n_c, K, K);
    out : (len(zls), n_c, K, K), returned.
    """
    last = {}  # λ -> (exponent, slot of out)
    for n, z in enumerate(zls):
        zeta, lam = plan.zl[z]
        tag, powers, e = ("+" if lam > 0 else "-"), chains[lam], int(zeta) - 1
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


@lru_cache(maxsize=64)
def _angular_scales(zl):
    """ζ λ for every (ζ, λ) in zl, shape (n_zl,): dC/dcos θ = ζ λ (1 + λ cos θ)^(ζ−1)."""
    return np.array([zeta * lam for zeta, lam in zl], dtype=float)


# --------------------------------------------------------------------------------------
# trick 1: blocks of centres with padded neighbour lists
# --------------------------------------------------------------------------------------
def _blocks(i, n_atoms, block_size=BLOCK_SIZE, min_count=2):
    """Blocks of centres for the K×K paths (derivatives, VJP): :func:`_padded_blocks`."""
    return _padded_blocks(i, n_atoms, block_size, min_count)


def _padded_blocks(i, n_atoms, block_size, min_count):
    """Yield (centres, entries, valid) for blocks of centres with similar neighbour counts.

    ``entries[c, k]`` is the neighbour-list row of the k-th neighbour of centre c (0 where
    ``valid`` is False, i.e. padding), shape (n_c, K). Only centres with at least
    ``min_count`` (≥ 2: a triplet needs two) neighbours are included.
    """
    counts = np.bincount(i, minlength=n_atoms)
    starts = np.cumsum(counts) - counts
    centres = np.flatnonzero(counts >= max(min_count, 2))
    order = centres[np.argsort(counts[centres], kind="stable")]
    pos = 0
    while pos < len(order):
        n_c = len(order) - pos
        while True:  # as many centres as fit in block_size with the block's largest K
            K = counts[order[pos + n_c - 1]]
            fit = max(1, block_size // (K * K))
            if fit >= n_c:
                break
            n_c = fit
        cs = order[pos:pos + n_c]
        k = np.arange(K)
        valid = k[None, :] < counts[cs][:, None]  # (n_c, K)
        entries = np.where(valid, starts[cs][:, None] + k[None, :], 0)
        yield cs, entries, valid
        pos += n_c


class _Block:
    """Geometry of one block: padded vectors, distances, unit vectors, cos θ and r_jk²."""

    def __init__(self, plan, ws, entries, valid, vectors, distances, species_of_entry):
        r_cut = plan.r_cut
        n_c, K = entries.shape
        self.entries, self.valid = entries, valid
        self.D = vectors[entries] * valid[..., None]  # (n_c, K, 3); padding: D = 0
        self.r = np.where(valid, distances[entries], 2 * r_cut)  # (n_c, K); padding beyond r_c
        self.U = self.D / self.r[..., None]  # (n_c, K, 3) unit vectors (0 for padding)
        self.species = np.where(valid, species_of_entry[entries], -1)  # (n_c, K)
        self.cos = np.matmul(self.U, self.U.transpose(0, 2, 1), out=ws.get("cos", (n_c, K, K)))
        # y = 2 r_jk²/r_c² − 1 = c r_j² + c r_k² − 2c D_j·D_k − 1 with c = 2/r_c², as one
        # product of augmented matrices [−2c D_j, e_j, 1]·[D_k, 1, e_k], e = c r² − ½
        c = 2.0 / r_cut**2
        e = (c * self.r**2 - 0.5)[..., None]  # (n_c, K, 1)
        one = np.ones_like(e)
        left = np.concatenate([-2 * c * self.D, e, one], axis=2)  # (n_c, K, 5)
        right = np.concatenate([self.D, one, e], axis=2)  # (n_c, K, 5)
        self.y = np.matmul(left, right.transpose(0, 2, 1), out=ws.get("y", (n_c, K, K)))
        np.minimum(self.y, 1.0, out=self.y)  # clamp: r_jk ≥ r_c all look like r_c


# --------------------------------------------------------------------------------------
# radial functions: per pair, as in the reference
# --------------------------------------------------------------------------------------
def _cutoff_values(plan, distances):
    """f_c(r) per pair without its derivative (the cosine cutoff's sin is as costly as
    its cos); the same expression as :func:`nnptutor.cutoffs.cosine`."""
    if plan.cutoff_name != "cosine":
        return plan.cutoff(distances, plan.r_cut)[0]
    x = np.pi * distances / plan.r_cut
    return np.where(distances <= plan.r_cut, 0.5 * (np.cos(x) + 1.0), 0.0)


def _radial_rows(acsf, distances, fc, dfc=None):
    """The per-pair terms of :func:`~nnptutor.descriptors.acsf.radial_terms` (same
    expressions, same numbers), transposed: (n_rad, n_pairs), one contiguous row per
    function, so that numpy's inner loops run over the pairs, not over the 8 functions.
    With ``dfc`` (f_c' per pair [Å⁻¹]) also their derivatives d/dr [Å⁻¹], from the same
    exponentials and cosines (else None)."""
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
            np.multiply(2 * eta, row, out=shift)  # 2η (r − r_s)
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
            sin = np.sin(row)
            sin *= kappa
            sin *= fc
        np.cos(row, out=row)
        if dfc is not None:
            np.multiply(row, dfc, out=drows[n])
            drows[n] -= sin
        row *= fc
    return rows, drows


def _radial(acsf, plan, i, j, vectors, distances, species, values, entry):
    """G1–G3 into ``values``; returns f_c and f_c' per pair (f_c' None without ``entry``)."""
    from nnptutor.descriptors.acsf import radial_terms

    if entry is None:  # features only: rows, one bincount each
        fc = _cutoff_values(plan, distances)
        n_keys = len(values) * plan.n_el
        key = i * plan.n_el + species[j]  # (centre, neighbour element)
        sums = np.empty((plan.n_rad, n_keys))
        for out, row in zip(sums, _radial_rows(acsf, distances, fc)[0]):
            out[...] = np.bincount(key, weights=row, minlength=n_keys)
        values[:, : plan.ang0] = sums.T.reshape(len(values), plan.ang0)
        return fc, None
    fc, dfc = plan.cutoff(distances, plan.r_cut)
    if plan.n_el == 1:  # rows (one per function, from the same exponentials), bincount
        rows, drows = _radial_rows(acsf, distances, fc, dfc)
        for n, row in enumerate(rows):
            values[:, n] = np.bincount(i, weights=row, minlength=len(values))
        dterms = np.ascontiguousarray(drows.T)  # (n_pairs, n_rad)
    else:
        terms, dterms = radial_terms(distances, fc, dfc, acsf.g2, acsf.g3, True)
        _radial_sums(plan, i, j, species, terms, values)
    if entry is not None:
        s_j = species[j]
        unit = vectors / distances[:, None]  # (n_pairs, 3)
        if plan.n_el == 1:  # straight into the slice: no (n_pairs, 3, n_rad) temporary
            for a in range(3):  # per component: numpy's inner loop then runs over n_rad
                np.multiply(unit[:, a, None], dterms, out=entry[:, a, :plan.n_rad])
        else:
            per_entry = unit[:, :, None] * dterms[:, None, :]
            for s in range(plan.n_el):
                rows = np.flatnonzero(s_j == s)
                entry[rows, :, s * plan.n_rad:(s + 1) * plan.n_rad] = per_entry[rows]
    return fc, dfc


def _radial_sums(plan, i, j, species, terms, values):
    """values[i, radial columns of element s_j] = Σ_j terms, per (centre, neighbour element).

    terms : (n_pairs, n_rad) from :func:`radial_terms`; values : (n_atoms, n_features),
    written in place.
    """
    n_atoms = len(values)
    key = i * plan.n_el + species[j]  # (centre, neighbour element): sorted if one element
    if plan.n_el > 1 and len(key):
        # runs of one key are short (a few neighbours of each element), where reduceat
        # pays a per-run overhead: one bincount per column, in the same (list) order
        n_keys = n_atoms * plan.n_el
        columns = np.ascontiguousarray(terms.T)  # (n_rad, n_pairs)
        flat = np.stack([np.bincount(key, weights=c, minlength=n_keys) for c in columns], axis=1)
        values[:, : plan.ang0] = flat.reshape(n_atoms, plan.ang0)  # (n_atoms, n_el n_rad)
        return
    order = np.arange(len(key))
    key_sorted = key[order]
    if len(key):
        starts = np.flatnonzero(np.r_[True, key_sorted[1:] != key_sorted[:-1]])
        sums = np.add.reduceat(terms[order], starts, axis=0)  # (n_groups, n_rad)
        flat = values[:, : plan.ang0].reshape(n_atoms * plan.n_el, plan.n_rad)
        flat[key_sorted[starts]] = sums
        values[:, : plan.ang0] = flat.reshape(n_atoms, plan.ang0)


# --------------------------------------------------------------------------------------
# angular functions on one block
# --------------------------------------------------------------------------------------
def _pair_weights(plan, r, fc_entry, dfc_entry, eta, entries, valid):
    """a_j = e^{−η r²} f_c(r) and a'_j = da_j/dr on a block, (n_c, K) each, 0 for padding."""
    fc = fc_entry[entries] * valid
    gauss = np.exp(-eta * r**2)
    if dfc_entry is None:  # features only
        return gauss * fc, None
    dfc = dfc_entry[entries] * valid
    return gauss * fc, gauss * (dfc - 2 * eta * r * fc)


def _select(stack, zls):
    """stack[zls] without a copy when zls is a run of consecutive indices."""
    if np.array_equal(zls, np.arange(zls[0], zls[0] + len(zls))):
        return stack[zls[0]:zls[0] + len(zls)]
    return stack[zls]


def _offdiag(ws, n_c, K):
    """1 − δ_jk broadcast to (n_c, K, K): G5 sums every pair j ≠ k (ws unused: no copy)."""
    return np.broadcast_to(1.0 - np.eye(K), (n_c, K, K))


def _group_matrices(plan, ws, block, kind, eta, derivatives, B_cache):
    """(B, B̂) for a group: the triplet cutoff of its η (G4) or 1 − δ_jk (G5, B̂ = None)."""
    n_c, K = block.r.shape
    if kind == "G5":
        return _offdiag(ws, n_c, K), None
    if eta not in B_cache:
        B_cache[eta] = _triplet_cutoff(plan, ws, len(B_cache), eta, block.y, derivatives)
    return B_cache[eta]


@lru_cache(maxsize=256)
def _triangle(K):
    """Pairs j < k of K neighbours: (j, k, flat index j K + k), each shape (K(K−1)/2,)."""
    j, k = np.triu_indices(K, 1)
    return j, k, j * K + k


def _angular_block_packed(plan, ws, block, cs, fc, dfc, values):
    """Features only (trick 6): G4/G5 on the unique pairs j < k, packed in a vector.

    The K×K matrices are symmetric, so after the two matrix products that give cos θ and
    r_jk², everything is evaluated on the upper triangle only: half the work.
    """
    n_c, K = block.r.shape
    _, _, flat = _triangle(K)
    shape = (n_c, len(flat))
    cos = np.take(block.cos.reshape(n_c, K * K), flat, axis=1, out=ws.get("cos_p", shape))
    y = np.take(block.y.reshape(n_c, K * K), flat, axis=1, out=ws.get("y_p", shape))
    B_cache = {eta: _triplet_cutoff(plan, ws, n, eta, y, False)[0]
               for n, eta in enumerate(plan.g4_etas)}
    _packed_features(plan, ws, block, cs, fc, dfc, values, cos, B_cache)


def _packed_features(plan, ws, block, cs, fc, dfc, values, cos, B_cache):
    """The features of :func:`_angular_block_packed` from packed cos θ_jk and {η: B_jk},
    each (n_c, n_triangle) (shared with the VJP path, which keeps them)."""
    n_c, K = block.r.shape
    j, k, flat = _triangle(K)
    shape = (n_c, len(j))
    C, _ = _angular_stacks(plan, ws, cos, False)  # (n_zl, n_c, n_triangle)
    onehot = (block.species[..., None] == np.arange(plan.n_el)).astype(float)  # (n_c, K, S)
    n_pb = len(plan.element_pairs)
    X = ws.get("X_p", (n_c, n_pb) + shape[1:])
    for kind, eta, members, zls, norms in plan.groups:
        a, _ = _pair_weights(plan, block.r, fc, dfc, eta, block.entries, block.valid)
        if n_pb == 1:  # a_j a_k: outer product, then the triangle
            outer = np.multiply(a[:, :, None], a[:, None, :], out=ws.get("outer", (n_c, K, K)))
            np.take(outer.reshape(n_c, K * K), flat, axis=1, out=X[:, 0])
        else:  # unordered element pairs: (s_j, s_k) = (s, t) or (t, s)
            A = a[:, None, :] * onehot.transpose(0, 2, 1)  # (n_c, S, K): element-major, so
            Aj, Ak = np.take(A, j, axis=2), np.take(A, k, axis=2)  # (n_c, S, n_triangle)
            for pb, (sa, sb) in enumerate(plan.element_pairs):  # these run contiguously
                np.multiply(Aj[:, sa], Ak[:, sb], out=X[:, pb])
                if sa != sb:
                    X[:, pb] += Aj[:, sb] * Ak[:, sa]
        if kind == "G4":
            X *= B_cache[eta][:, None]
        _contract(plan, values, cs, _select(C, zls), X, members, norms)


def _cyclic_partner(row, shape):
    """View (n_c, n_d, K) of a doubled row (n_c, 2K): [c, d, j] = row[c, j + d + 1], the
    value of neighbour (j + d + 1) mod K (trick 10). No copy."""
    s0, s1 = row.strides
    return np.lib.stride_tricks.as_strided(row[:, 1:], shape=shape, strides=(s0, s1, s1),
                                           writeable=False)


def _cyclic_features(plan, ws, cs, entries, valid, vectors, distances, species_of_entry,
                     fc, values):
    """Features only of one block (trick 10): every unordered pair {j, k} of K neighbours,
    K odd, is (j, j + d mod K) for exactly one d in 1 … (K − 1)/2, so the triplets are an
    (n_c, n_d, K) array whose partner values are strided views of rows written twice.
    cos θ_jk, r_jk² and a_j a_k are then elementwise products: no K×K matrix
    products, no gathers into a packed triangle (the same numbers as
    :func:`_angular_block_packed`, summed in another order).
    """
    n_c, K = entries.shape
    if K % 2 == 0:  # one more padding neighbour (a = 0) makes K odd
        entries = np.concatenate([entries, np.zeros((n_c, 1), entries.dtype)], axis=1)
        valid = np.concatenate([valid, np.zeros((n_c, 1), bool)], axis=1)
        K += 1
    n_d = (K - 1) // 2
    shape = (n_c, n_d, K)
    rows = ws.get("cyc_rows", (6 + plan.n_el, n_c, 2 * K))  # per-neighbour rows, doubled
    Ux, Uy, Uz, r_row, e, a_row = rows[:6]
    r = np.where(valid, distances[entries], 2 * plan.r_cut)  # padding beyond r_c
    inv_r = np.divide(valid, r)  # padding: U = 0
    for comp, row in zip(vectors.T, (Ux, Uy, Uz)):
        np.multiply(comp[entries], inv_r, out=row[:, :K])
    r_row[:, :K] = r
    c = 2.0 / plan.r_cut**2  # y = 2 r_jk²/r_c² − 1 = e_j + e_k − 2c r_j r_k cos θ_jk
    np.multiply(c * r, r, out=e[:, :K])  # e = c r² − ½
    e[:, :K] -= 0.5
    rows[:5, :, K:] = rows[:5, :, :K]
    cos = np.multiply(Ux[:, None, :K], _cyclic_partner(Ux, shape), out=ws.get("cos_p", shape))
    tmp = ws.get("cyc_tmp", shape)
    for row in (Uy, Uz):
        cos += np.multiply(row[:, None, :K], _cyclic_partner(row, shape), out=tmp)
    y = np.multiply((-2.0 * c) * r[:, None, :], _cyclic_partner(r_row, shape),
                    out=ws.get("y_p", shape))
    y *= cos
    y += e[:, None, :K]
    y += _cyclic_partner(e, shape)
    np.minimum(y, 1.0, out=y)  # clamp: r_jk ≥ r_c all look like r_c
    flat = (n_c, n_d * K)
    cos, y = cos.reshape(flat), y.reshape(flat)
    B_cache = {eta: _triplet_cutoff(plan, ws, n, eta, y, False)[0]
               for n, eta in enumerate(plan.g4_etas)}
    C, _ = _angular_stacks(plan, ws, cos, False)  # (n_zl, n_c, n_triplets)
    n_pb = len(plan.element_pairs)
    X = ws.get("X_p", (n_c, n_pb) + shape[1:])
    if n_pb > 1:
        A = rows[5:]  # (n_el, n_c, 2K): a_j of the neighbours of each element
        species = np.where(valid, species_of_entry[entries], -1)
    for kind, eta, members, zls, norms in plan.groups:
        a, _ = _pair_weights(plan, r, fc, None, eta, entries, valid)
        if n_pb == 1:
            a_row[:, :K] = a
            a_row[:, K:] = a
            np.multiply(a_row[:, None, :K], _cyclic_partner(a_row, shape), out=X[:, 0])
        else:
            for s in range(plan.n_el):
                np.multiply(a, species == s, out=A[s, :, :K])
                A[s, :, K:] = A[s, :, :K]
            for pb, (sa, sb) in enumerate(plan.element_pairs):
                np.multiply(A[sa, :, None, :K], _cyclic_partner(A[sb], shape), out=X[:, pb])
                if sa != sb:
                    X[:, pb] += np.multiply(A[sb, :, None, :K], _cyclic_partner(A[sa], shape),
                                            out=tmp)
        Xf = X.reshape(n_c, n_pb, n_d * K)
        if kind == "G4":
            Xf *= B_cache[eta][:, None]
        _contract(plan, values, cs, _select(C, zls), Xf, members, norms)


def _contract(plan, values, cs, Cz, X, members, norms):
    """values[cs, angular columns of the group] = Σ_t Cz[z, c, t] X[c, pb, t] × norm_z.

    Cz : (n_z, n_c, n_t); X : (n_c, n_pb, n_t). One (n_z × n_t)(n_t × n_pb) product per
    centre (per centre and ζ, as before, was twice the calls for small molecules).
    """
    n_c, n_pb = X.shape[:2]
    G = np.matmul(Cz.transpose(1, 0, 2), X.transpose(0, 2, 1))  # (n_c, n_z, n_pb)
    G = G.transpose(0, 2, 1) * norms  # (n_c, n_pb, n_z)
    columns = (plan.ang0 + np.arange(n_pb)[:, None] * plan.n_ang + members).ravel()
    if np.array_equal(columns, np.arange(columns[0], columns[0] + len(columns))):
        values[cs, columns[0]:columns[0] + len(columns)] = G.reshape(n_c, -1)  # a slice
    else:
        values[np.ix_(cs, columns)] = G.reshape(n_c, -1)


def _symmetric_matmul_t(M, Rt):
    """(M R)ᵀ = Rᵀ M for symmetric M, shape (..., n_cols, K), contiguous.

    With the few columns of R as rows, numpy's batched product streams through each K×K
    matrix once: about twice as fast as one matrix–vector product per column, and about
    three times as fast as ``M @ R``, which BLAS treats as many tiny matrix–matrix products.
    Every matrix this is used on
    (B∘C, B∘C', B̂∘C, and their weighted sums) is symmetric in (j, k).

    M : (..., K, K) symmetric; Rt : (n_c, n_cols, K), the columns of R as rows
    """
    return np.ascontiguousarray(Rt) @ M


def _angular_block(plan, ws, block, cs, fc, dfc, values, entry):
    if entry is None:
        return _angular_block_packed(plan, ws, block, cs, fc, dfc, values)
    chains = {} if all(float(z).is_integer() for z, _ in plan.zl) else None
    C, E = _angular_stacks(plan, ws, block.cos, True, chains)  # (n_zl, n_c, K, K) each
    scales = _angular_scales(tuple(plan.zl))  # dC/dcos θ = scales × E
    onehot = (block.species[..., None] == np.arange(plan.n_el)).astype(float)  # (n_c, K, S)
    B_cache = {}
    for kind, eta, members, zls, norms in plan.groups:
        a, da = _pair_weights(plan, block.r, fc, dfc, eta, block.entries, block.valid)
        A = a[..., None] * onehot  # (n_c, K, S): a_j for neighbours of each element
        B, B_hat = _group_matrices(plan, ws, block, kind, eta, True, B_cache)
        if chains is None:  # P = B ∘ E from the stack E
            make_P = lambda out, zls=zls, B=B: np.multiply(_select(E, zls), B, out=out)  # noqa: E731
        else:  # integer ζ: B ∘ E straight from the powers of C
            make_P = lambda out, zls=zls, B=B: _cutoff_power_stack(plan, ws, chains, zls, B, out)  # noqa: E731
        _angular_block_derivatives(plan, ws, block, cs, A, a, da, B, B_hat, _select(C, zls),
                                   make_P, scales[zls], members, norms, onehot, values, entry)


def _angular_block_derivatives(plan, ws, block, cs, A, a, da, B, B_hat, C, make_P, scales,
                               members, norms, onehot, values, entry):
    """Features and dG/dD_m for every neighbour m of every centre in the block (trick 5).

    With T(m, k) = a_m a_k B_mk C_mk and H_t(m) = Σ_{k of element t} ∂T(m, k)/∂D_m:

        H_t(m) = D_m [(a'_m/r_m)(M A_t)_m + a_m (N A_t)_m] − a_m (N (A_t∘D))_m
                 + (a_m/r_m) [V_t(m) − U_m (U_m · V_t(m))],   V_t = P (A_t∘U)

    with M = B∘C, N = B̂∘C, P = B∘C' (C' = dC/dcos θ = ζ λ E, the factor applied to V);
    the last term uses
    Σ_k P_mk cos θ_mk a_k = U_m · Σ_k P_mk a_k U_k (cos θ_mk = U_m·U_k). For the element
    pair (s, t): dG/dD_m = [m is s] H_t(m) + [m is t] H_s(m) (once if s = t), and the
    features themselves are G_st = Σ_m A_s(m) (M A_t)_m (halved if s = t).
    """
    n_c, K = block.r.shape
    S = plan.n_el
    n_z = C.shape[0]
    shape = C.shape  # (n_z, n_c, K, K)
    # everything below is laid out neighbour-last, (..., K): the layout the products with
    # the symmetric K×K matrices give (Rᵀ M), so numpy's inner loops run over the K
    # neighbours, not over 3 Cartesian components or S elements
    At = np.ascontiguousarray(A.transpose(0, 2, 1))  # (n_c, S, K)
    Dt = block.D.transpose(0, 2, 1)  # (n_c, 3, K)
    Ut = block.U.transpose(0, 2, 1)
    ADt = (At[:, :, None, :] * Dt[:, None, :, :]).reshape(n_c, 3 * S, K)
    AUt = (At[:, :, None, :] * Ut[:, None, :, :]).reshape(n_c, 3 * S, K)
    M = np.multiply(C, B, out=ws.get("M", shape))  # B broadcast over (ζ, λ)
    MAt = _symmetric_matmul_t(M, At)  # (n_z, n_c, S, K) = (M A)ᵀ
    # features: G[c, z, s, t] = Σ_m A[c, m, s] (M A)[z, c, m, t]
    G = np.einsum("csm,zctm->czst", At, MAt)
    for pb, (sa, sb) in enumerate(plan.element_pairs):
        half = 0.5 if sa == sb else 1.0
        columns = plan.ang0 + pb * plan.n_ang + members
        values[np.ix_(cs, columns)] = G[:, :, sa, sb] * (half * norms)
    P = make_P(M)  # B ∘ E = P / (ζ λ), into M (no longer needed)
    Vt = _symmetric_matmul_t(P, AUt).reshape(n_z, n_c, S, 3, K)
    Vt *= scales[:, None, None, None, None]  # ζ λ: exact for the usual ζ = 2^n, λ = ±1
    Dt = Dt[None, :, None]  # (1, n_c, 1, 3, K)
    Ut = Ut[None, :, None]
    row = lambda x: x[None, :, None, None, :]  # noqa: E731  (n_c, K) -> (1, n_c, 1, 1, K)
    inv_r = 1.0 / block.r
    # H: (n_z, n_c, S, 3, K)
    H = Dt * (row(da * inv_r) * MAt[:, :, :, None, :])
    VU = np.multiply(Vt[:, :, :, 0], Ut[:, :, :, 0])  # U_m · V(m): (n_z, n_c, S, K)
    VU += Vt[:, :, :, 1] * Ut[:, :, :, 1]
    VU += Vt[:, :, :, 2] * Ut[:, :, :, 2]
    Vt -= Ut * VU[:, :, :, None, :]
    Vt *= row(a * inv_r)
    H += Vt
    if B_hat is not None:
        N = np.multiply(C, B_hat, out=P)  # P is no longer needed
        NADt = _symmetric_matmul_t(N, np.concatenate([At, ADt], axis=1))  # (n_z, n_c, 4S, K)
        H += Dt * (row(a) * NADt[:, :, :S, None, :])
        H -= row(a) * NADt[:, :, S:].reshape(n_z, n_c, S, 3, K)
    H *= norms[:, None, None, None, None]
    rows = block.entries[block.valid]  # neighbour-list rows of the real neighbours
    for pb, (sa, sb) in enumerate(plan.element_pairs):
        d = onehot[None, :, None, :, sa] * H[:, :, sb]  # (n_z, n_c, 3, K)
        if sa != sb:
            d += onehot[None, :, None, :, sb] * H[:, :, sa]
        columns = plan.ang0 + pb * plan.n_ang + members
        d = d.transpose(1, 3, 2, 0)[block.valid]  # (n_valid, 3, n_z)
        if np.array_equal(columns, np.arange(columns[0], columns[0] + len(columns))):
            entry[rows, :, columns[0]:columns[0] + len(columns)] = d  # a slice: fast
        else:
            entry[rows[:, None, None], np.arange(3)[None, :, None], columns[None, None, :]] = d


# --------------------------------------------------------------------------------------
# trick 9: centres with few neighbours (molecules) as one flat list of triplets
# --------------------------------------------------------------------------------------
#: Centres with at most this many neighbours take the flat triplet path
#: (:func:`_triplet_features`) when no derivatives are asked for; measured on 1000
#: ethanol molecules (K = 8) and fcc Cu (K ≈ 78), see benchmarks/README.md.
TRIPLET_MAX_K = 10

#: Triplets per chunk of the flat path: a chunk's dozen float64 vectors stay in cache.
TRIPLET_CHUNK = 1 << 15


def _triplet_chunks(counts, starts, max_k, chunk=TRIPLET_CHUNK):
    """Yield (centres, p, q) for all centres with 2 ≤ K ≤ ``max_k`` neighbours.

    Centres are grouped by their neighbour count K, so that the pairs j < k of one group
    are one broadcast: ``p``, ``q`` (n_c, K(K−1)/2) are the neighbour-list rows of
    neighbours j and k of each centre (no padding).
    """
    for K in np.unique(counts[(counts >= 2) & (counts <= max_k)]):
        cs = np.flatnonzero(counts == K)
        tj, tk, _ = _triangle(int(K))
        per = max(1, chunk // len(tj))
        for lo in range(0, len(cs), per):
            first = starts[cs[lo:lo + per], None]
            yield cs[lo:lo + per], first + tj, first + tk


def _triplet_features(plan, ws, i, j, vectors, distances, species, fc, values, max_k):
    """Angular features of the centres with at most ``max_k`` neighbours (trick 9).

    For a small K the padded blocks spend their time in numpy's per-call overhead and
    short inner loops; here every step is one long vectorised operation over the flat
    list of triplets (i, j < k) of many centres: cos θ and r_jk² from gathered
    components, B_jk by the polynomial of trick 3, the ζ chains of trick 4, and one
    ``np.bincount`` per function that sums the triplet terms into (centre, element pair).
    All per-triplet arrays are workspace buffers (trick 7).
    """
    counts = np.bincount(i, minlength=len(values))
    starts = np.cumsum(counts) - counts
    Dx, Dy, Dz = np.ascontiguousarray(vectors.T)  # (n_pairs,) each [Å]
    r2 = distances * distances
    inv_r = 1.0 / distances
    c = 2.0 / plan.r_cut**2  # y = c r_jk² − 1
    n_pb = len(plan.element_pairs)
    if n_pb > 1:
        lookup = np.zeros((plan.n_el, plan.n_el), dtype=np.intp)
        for pb, (sa, sb) in enumerate(plan.element_pairs):
            lookup[sa, sb] = lookup[sb, sa] = pb
        s_entry = species[j]
        s_row = s_entry * plan.n_el  # row of the lookup table, per entry
        lookup = lookup.ravel()
    weights = {}  # (kind, η) -> a_j = e^{−η r²} f_c(r) per entry
    for kind, eta, *_ in plan.groups:
        weights[kind, eta] = np.exp(-eta * r2) * fc
    for cs, p, q in _triplet_chunks(counts, starts, max_k):
        n_c, n_t = p.shape
        p, q = p.ravel(), q.ravel()
        shape = p.shape
        tp, tq = ws.get("t_p", shape), ws.get("t_q", shape)
        dot = np.multiply(np.take(Dx, p, out=tp), np.take(Dx, q, out=tq),
                          out=ws.get("t_dot", shape))
        for comp in (Dy, Dz):
            dot += np.multiply(np.take(comp, p, out=tp), np.take(comp, q, out=tq), out=tp)
        cos = np.multiply(dot, np.take(inv_r, p, out=tp), out=ws.get("t_cos", shape))
        cos *= np.take(inv_r, q, out=tp)
        # y = c (r_j² + r_k² − 2 D_j·D_k) − 1, clamped at 1 (r_jk ≥ r_c)
        y = np.add(np.take(r2, p, out=tp), np.take(r2, q, out=tq), out=ws.get("t_y", shape))
        dot *= 2.0
        y -= dot
        y *= c
        y -= 1.0
        np.minimum(y, 1.0, out=y)
        C, _ = _angular_stacks(plan, ws, cos, False)  # (n_zl, n_triplets)
        key = ws.get("t_key", (n_c, n_t)).view(np.intp)  # (centre, element pair) index
        key[...] = (np.arange(n_c) * n_pb)[:, None]
        key = key.ravel()
        if n_pb > 1:
            sq = np.take(s_entry, q, out=ws.get("t_sq", shape).view(np.intp))
            sq += np.take(s_row, p, out=ws.get("t_sp", shape).view(np.intp))
            key += np.take(lookup, sq, out=sq)
        G = np.empty((plan.n_ang, n_c * n_pb))
        W, term = ws.get("t_W", shape), ws.get("t_term", shape)
        for kind, eta, members, zls, norms in plan.groups:
            a = weights[kind, eta]
            np.multiply(np.take(a, p, out=tp), np.take(a, q, out=tq), out=W)
            if kind == "G4":
                W *= _triplet_cutoff(plan, ws, 0, eta, y, False)[0]
            for m, z, norm in zip(members, zls, norms):
                G[m] = np.bincount(key, weights=np.multiply(C[z], W, out=term),
                                   minlength=n_c * n_pb)
                G[m] *= norm
        values[cs, plan.ang0:] = G.T.reshape(n_c, n_pb * plan.n_ang)


# --------------------------------------------------------------------------------------
# entry points
# --------------------------------------------------------------------------------------
def fast_features(acsf, i, j, vectors, distances, species, derivatives,
                  triplet_max_k=None, cyclic=True):
    """Same contract as :func:`nnptutor.descriptors.acsf.reference_features`.

    ``triplet_max_k``: centres with at most this many neighbours take the flat triplet
    path when ``derivatives`` is False (default :data:`TRIPLET_MAX_K`; 0 uses the padded
    blocks for every centre).
    """
    if triplet_max_k is None:
        triplet_max_k = TRIPLET_MAX_K
    plan = _plan(acsf)
    n_atoms, n_pairs = len(species), len(i)
    values = np.zeros((n_atoms, acsf.n_features))
    entry = np.zeros((n_pairs, 3, acsf.n_features)) if derivatives else None
    fc, dfc = _radial(acsf, plan, i, j, vectors, distances, species, values, entry)
    if plan.n_ang == 0:
        return values, entry
    species_of_entry = species[j]
    ws = _workspace()
    max_k = triplet_max_k if entry is None else 0  # derivatives: blocks only
    if entry is None and cyclic:
        # cyclic blocks have no K×K matrix, only (K − 1)/2 × K triplet arrays: twice the
        # centres per block keeps those at BLOCK_SIZE entries
        blocks = _padded_blocks(i, n_atoms, 2 * BLOCK_SIZE, 2)
    else:
        blocks = _blocks(i, n_atoms)
    if max_k >= 2:
        counts = np.bincount(i, minlength=n_atoms)
        if np.any((counts >= 2) & (counts <= max_k)):
            _triplet_features(plan, ws, i, j, vectors, distances, species, fc, values, max_k)
            if counts.max() <= max_k:
                blocks = ()
            elif cyclic:
                blocks = _padded_blocks(i, n_atoms, 2 * BLOCK_SIZE, max_k + 1)
            else:
                blocks = _blocks(i, n_atoms, min_count=max_k + 1)
    for cs, entries, valid in blocks:
        if entry is None and cyclic:
            _cyclic_features(plan, ws, cs, entries, valid, vectors, distances,
                             species_of_entry, fc, values)
            continue
        block = _Block(plan, ws, entries, valid, vectors, distances, species_of_entry)
        _angular_block(plan, ws, block, cs, fc, dfc, values, entry)
    return values, entry


# --------------------------------------------------------------------------------------
# vector–Jacobian product: forces without the derivative array (trick 8)
# --------------------------------------------------------------------------------------
#: Cap [bytes] on the per-block geometry (packed cos θ_jk, B, B̂, padded vectors) that
#: :func:`fast_features_with_vjp` keeps from the forward pass for the backward pass:
#: 1 + 2 n_η float64 per triplet j < k (n_η distinct G4 η), about 80 kB per Cu atom with
#: 78 neighbours and one η (40 MB for 500 atoms). Blocks beyond the cap are recomputed in
#: the backward pass (same numbers, slower), so memory stays bounded for any size.
VJP_CACHE_BYTES = 1 << 27  # 128 MiB


class _VJPBlock:
    """What the backward pass needs of one block of centres, triplets packed as j < k.

    Attributes: ``cs`` (n_c,) centres; ``entries``, ``valid`` (n_c, K) neighbour-list rows;
    ``D`` (n_c, K, 3) [Å], ``U`` (n_c, K, 3), ``r`` (n_c, K) [Å] (padding: D = U = 0,
    r = 2 r_c); ``species`` (n_c, K) (−1 for padding); ``cos`` (n_c, n_triangle) cos θ_jk;
    ``cutoffs`` {η: (B, B̂)} with B = f_c(r_jk) e^{−η r_jk²}, B̂ = 2 dB/d(r_jk²) [Å⁻²],
    each (n_c, n_triangle), for every G4 η.
    """

    def __init__(self, plan, ws, cs, block):
        n_c, K = block.r.shape
        _, _, flat = _triangle(K)
        self.cs, self.entries, self.valid = cs, block.entries, block.valid
        self.D, self.U, self.r, self.species = block.D, block.U, block.r, block.species
        self.cos = np.take(block.cos.reshape(n_c, K * K), flat, axis=1)
        y = np.take(block.y.reshape(n_c, K * K), flat, axis=1, out=ws.get("y_v", self.cos.shape))
        self.cutoffs = {}
        for eta in plan.g4_etas:
            B, B_hat = _triplet_cutoff(plan, ws, "_v", eta, y, True)
            self.cutoffs[eta] = (B.copy(), B_hat.copy())

    @staticmethod
    def nbytes(plan, n_c, K):
        """Memory of one block's cache [bytes]."""
        return 8 * n_c * (K * (K - 1) // 2 * (1 + 2 * len(plan.g4_etas)) + 12 * K)


def fast_features_with_vjp(acsf, i, j, vectors, distances, species, n_atoms,
                           cache_bytes=None):
    """Features and ``vjp(dE_dG) -> dE/dR``; see :meth:`ACSF.compute_with_vjp`.

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
        Cap on what is kept from the forward pass (default :data:`VJP_CACHE_BYTES`);
        0 keeps nothing and the backward pass recomputes the geometry.

    Returns
    -------
    values : ndarray, shape (n_atoms, n_features)
        As :func:`fast_features` (the same numbers).
    vjp : callable
        ``vjp(dE_dG)``, dE_dG (n_atoms, n_features) [eV / feature unit] → dE/dR
        (n_atoms, 3) [eV/Å]. May be called any number of times; it does not modify what it
        keeps.
    """
    from nnptutor.descriptors.acsf import radial_terms

    plan = _plan(acsf)
    values = np.zeros((n_atoms, acsf.n_features))
    fc, dfc = plan.cutoff(distances, plan.r_cut)
    # as _radial, with dG/dr_ij kept for the backward pass (one exp per pair and G2)
    terms, dterms = radial_terms(distances, fc, dfc, acsf.g2, acsf.g3)  # (n_pairs, n_rad)
    _radial_sums(plan, i, j, species, terms, values)
    blocks = []  # _VJPBlock, or (cs, entries, valid) for a block to recompute
    if plan.n_ang:
        budget = VJP_CACHE_BYTES if cache_bytes is None else cache_bytes
        species_of_entry = species[j]
        ws = _workspace()
        for cs, entries, valid in _blocks(i, n_atoms):
            block = _Block(plan, ws, entries, valid, vectors, distances, species_of_entry)
            size = _VJPBlock.nbytes(plan, *entries.shape)
            if size <= budget:  # keep it, and compute the features from what is kept
                budget -= size
                vb = _VJPBlock(plan, ws, cs, block)
                B = {eta: pair[0] for eta, pair in vb.cutoffs.items()}
                _packed_features(plan, ws, block, cs, fc, dfc, values, vb.cos, B)
                blocks.append(vb)
            else:
                _angular_block_packed(plan, ws, block, cs, fc, dfc, values)
                blocks.append((cs, entries, valid))

    def vjp(dE_dG):
        dE_dG = np.asarray(dE_dG, dtype=float)
        if dE_dG.shape != values.shape:
            raise ValueError(f"dE_dG has shape {dE_dG.shape}; expected {values.shape}")
        return _vjp(plan, i, j, vectors, distances, species, fc, dfc, dterms, blocks, dE_dG)

    return values, vjp


def _vjp(plan, i, j, vectors, distances, species, fc, dfc, dterms, blocks, dE_dG):
    """dE/dR (n_atoms, 3) [eV/Å] for E = Σ_i Σ_f dE_dG[i, f] G[i, f], by the chain rule.

    Radial: one scalar dE/dr per pair. Angular: dE/dG is contracted with the (ζ, λ) terms
    into one weight per triplet, Ω_jk = Σ_z ω_z C_z(cos θ_jk) (trick 8), so that the
    Cartesian vectors appear only once per block: dE/dD_m = α_m D_m + Σ_k β_mk D_k.
    """
    n_atoms = len(species)
    grad = np.zeros((len(i), 3))  # dE/dD_p for every neighbour-list entry p
    # radial: one scalar per pair, dE/dr_p = Σ_f w[i_p, f(s_j)] dG_f/dr_p (dterms: dG_f/dr_p)
    s_j = species[j]
    radial_w = dE_dG[:, : plan.ang0].reshape(n_atoms, plan.n_el, plan.n_rad)[i, s_j]
    grad += (np.einsum("pf,pf->p", radial_w, dterms) / distances)[:, None] * vectors
    if blocks:
        pair_index = np.zeros((plan.n_el, plan.n_el), dtype=int)
        for pb, (sa, sb) in enumerate(plan.element_pairs):
            pair_index[sa, sb] = pair_index[sb, sa] = pb
        ws = _workspace()
        species_of_entry = species[j]
        for vb in blocks:
            if not isinstance(vb, _VJPBlock):  # not kept: recompute the geometry
                cs, entries, valid = vb
                block = _Block(plan, ws, entries, valid, vectors, distances, species_of_entry)
                vb = _VJPBlock(plan, ws, cs, block)
            g = _angular_block_vjp(plan, ws, vb, fc, dfc, dE_dG, pair_index)
            grad[vb.entries[vb.valid]] += g[vb.valid]  # g: (n_c, K, 3)
    # D_p = R_j − R_i (+ shift): dE/dR_j += dE/dD_p, dE/dR_i −= dE/dD_p
    out = np.zeros((n_atoms, 3))
    for a in range(3):
        out[:, a] = (np.bincount(j, grad[:, a], minlength=n_atoms)
                     - np.bincount(i, grad[:, a], minlength=n_atoms))
    return out


def _angular_block_vjp(plan, ws, vb, fc, dfc, dE_dG, pair_index):
    """dE/dD_m (n_c, K, 3) [eV/Å] from the angular features of one block.

    With T(m, k) = a_m a_k B_mk Ω_mk, summed over k, and M₁ = BΩ, M₂ = B̂Ω, M₃ = BΩ'
    (Ω' = dΩ/dcos θ), the derivative of Σ_k T(m, k) with respect to D_m is

        α_m D_m + (a_m/r_m) (M₃ (a∘U))_m − a_m (M₂ (a∘D))_m,
        α_m = (a'_m/r_m)(M₁ a)_m + a_m (M₂ a)_m − (a_m/r_m²) U_m · (M₃ (a∘U))_m

    (the β_mk D_k sum of the docstring of :func:`_vjp`, with (a/r)∘D = a∘U). The three
    matrices are built on the packed triangle and unpacked once for one batched product.
    """
    n_c, K = vb.r.shape
    j, k, flat = _triangle(K)
    n_t = len(j)
    if plan.n_el > 1:
        s = np.maximum(vb.species, 0)  # padding has a = 0; any element will do
        pairs = pair_index[np.take(s, j, axis=1), np.take(s, k, axis=1)]  # (n_c, n_t)
    else:
        pairs = None
    inv_r = 1.0 / vb.r
    alpha = np.zeros((n_c, K))
    g = np.zeros((n_c, K, 3))
    columns_of_pairs = plan.ang0 + np.arange(len(plan.element_pairs))[:, None] * plan.n_ang
    for kind, eta, members, zls, norms in plan.groups:
        a, da = _pair_weights(plan, vb.r, fc, dfc, eta, vb.entries, vb.valid)
        # ω[c, pb, z] = dE/dG × 2^(1−ζ) for every element pair and (ζ, λ) of the group
        omega = dE_dG[vb.cs][:, columns_of_pairs + members[None, :]] * norms  # (n_c, n_pb, n_z)
        Om = _omega_polynomial(plan, ws, zls, omega, vb.cos, pairs)  # (2, n_c, n_t): Ω, Ω'
        M = ws.get("M_v", (3, n_c, n_t))
        if kind == "G4":
            B, B_hat = vb.cutoffs[eta]
            np.multiply(Om[0], B, out=M[0])
            np.multiply(Om[0], B_hat, out=M[1])
            np.multiply(Om[1], B, out=M[2])
        else:  # G5: B = 1 for j ≠ k, no r_jk dependence
            M[0], M[2] = Om[0], Om[1]
            M[1] = 0.0
        full = ws.get("full_v", (3, n_c, K * K))
        full[..., flat] = M
        full[..., (k * K + j)] = M
        full[..., :: K + 1] = 0.0
        full = full.reshape(3, n_c, K, K)
        aU = a[..., None] * vb.U
        R = np.concatenate([a[..., None], a[..., None] * vb.D, aU], axis=2)  # (n_c, K, 7)
        P = np.ascontiguousarray(R.transpose(0, 2, 1)) @ full  # (3, n_c, 7, K): (M R)ᵀ
        M1a, M2a, M2aD, M3aU = P[0, :, 0], P[1, :, 0], P[1, :, 1:4], P[2, :, 4:7]
        M3aU = M3aU.transpose(0, 2, 1)  # (n_c, K, 3)
        U_M3aU = np.einsum("cma,cma->cm", vb.U, M3aU)
        alpha += (da * inv_r) * M1a + a * M2a - (a * inv_r**2) * U_M3aU
        g += (a * inv_r)[..., None] * M3aU - a[..., None] * M2aD.transpose(0, 2, 1)
    g += alpha[..., None] * vb.D
    return g


@lru_cache(maxsize=64)
def _power_sums(zl):
    """How :func:`_omega_polynomial` evaluates Σ_z ω_z (1 + λ_z x)^ζ_z for the (ζ, λ) in zl.

    Returns (chains, direct). ``chains``: one (λ, exponents, S, dS) per λ with integer ζ;
    ``exponents`` the distinct ζ in decreasing order, S (n_z, n_e) sums the weights of each
    exponent, dS = λ ζ S the weights of the derivative. ``direct``: indices of the
    non-integer ζ, evaluated as powers.
    """
    chains = []
    for lam in (1.0, -1.0):
        zetas = sorted({int(z) for z, l in zl if l == lam and float(z).is_integer()},
                       reverse=True)
        if not zetas:
            continue
        S = np.array([[float(l == lam and z == e) for e in zetas] for z, l in zl])
        chains.append((lam, zetas, S, S * lam * np.array(zetas, dtype=float)))
    direct = [n for n, (z, _) in enumerate(zl) if not float(z).is_integer()]
    return chains, direct


def _omega_polynomial(plan, ws, zls, omega, cos, pairs):
    """Ω = Σ_z ω_z (1 + λ_z cos)^ζ_z and Ω' = dΩ/dcos on packed triplets (trick 8).

    omega : (n_c, n_pb, n_z) weights of the group's (ζ, λ) = plan.zl[zls]; cos : (n_c, n_t);
    pairs : (n_c, n_t) element-pair index of each triplet, or None with one element.
    For integer ζ, Σ_ζ w_ζ u^ζ with u = 1 + λ cos (≥ 0) is one polynomial per centre and
    element pair with few nonzero coefficients, evaluated by Horner's rule over the gaps
    between exponents (start from w_ζ₁, multiply by u^(ζ₁−ζ₂), add w_ζ₂, …, finally multiply
    by u^ζ_min; the gap powers by repeated squaring, e.g. u^12 from u², u³, u⁶). Ω' has the
    same exponents less one, so it runs alongside. Every term w u^ζ has the sign of w:
    no cancellation beyond that of the weights themselves.
    Returns an array (2, n_c, n_t): Ω and Ω' (a workspace buffer).
    """
    n_c, n_pb, _ = omega.shape
    zl = tuple(plan.zl[z] for z in zls)
    chains, direct = _power_sums(zl)
    out = ws.get("Om_v", (2,) + cos.shape)
    if pairs is not None:  # per-triplet weights: gather from (2, n_e, n_c·n_pb)
        index = (np.arange(n_c)[:, None] * n_pb + pairs).ravel()
    for n_chain, (lam, zetas, S, dS) in enumerate(chains):
        coef = np.stack([omega @ S, omega @ dS])  # (2, n_c, n_pb, n_e)
        if pairs is None:
            terms = coef[:, :, 0, :, None]  # (2, n_c, n_e, 1)
            def term(e):
                return terms[:, :, e]
        else:
            table = coef.transpose(0, 3, 1, 2).reshape(2, len(zetas), n_c * n_pb)
            def term(e):
                return np.take(table[:, e], index, axis=1).reshape(out.shape)
        tag = "v+" if lam > 0 else "v-"
        base = ws.get(f"base{tag}", cos.shape)
        np.add(1.0, cos, out=base) if lam > 0 else np.subtract(1.0, cos, out=base)
        powers = {1: base}
        acc = out if n_chain == 0 else ws.get("Om_v2", out.shape)
        if len(zetas) == 1:
            acc[...] = term(0)
        for e in range(1, len(zetas)):
            gap = _power(zetas[e - 1] - zetas[e], powers, ws, tag)
            if e == 1:
                np.multiply(term(0), gap, out=acc)
            else:
                acc *= gap
            acc += term(e)
        acc[0] *= _power(zetas[-1], powers, ws, tag)
        if zetas[-1] > 1:
            acc[1] *= _power(zetas[-1] - 1, powers, ws, tag)
        if n_chain:
            out += acc
    if not chains:
        out.fill(0.0)
    for n in direct:  # non-integer ζ
        zeta, lam = zl[n]
        base = np.maximum(1.0 + lam * cos, 0.0)
        w = omega[:, :, n]
        w = w[:, :1] if pairs is None else np.take_along_axis(w, pairs, axis=1)
        out[0] += w * base**zeta
        out[1] += (w * (zeta * lam)) * base ** (zeta - 1)
    return out
