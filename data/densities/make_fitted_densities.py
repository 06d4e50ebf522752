"""Make nnptutor/datasets/densities/fitted_HCNO.gdens: 3-Gaussian fits to spherically averaged valence densities.

Reference densities: unrestricted Hartree–Fock atoms in PySCF (H all-electron, cc-pVTZ;
C, N, O with the ccECP pseudopotential and its ccecp-cc-pVTZ basis, so only the valence
electrons 4, 5, 6 are present, as in a plane-wave pseudo-density). The density is averaged
over a 590-point Lebedev sphere at each radius, converted to Å and e·Å⁻³, and fitted by
least squares on the radial distribution 4πr²ρ(r), 0 < r ≤ 5 Å, with three Gaussians
B_g exp(−β_g r²). The last amplitude is fixed by the constraint Σ_g B_g (π/β_g)^{3/2} = Z_val,
so each element's density integrates exactly to its valence charge. Amplitudes are free in
sign: the pseudo-valence densities of C, N and O have a dip at the nucleus (the 2s
pseudo-orbital is nodeless but the 2p density vanishes there), which the fit reproduces with
a negative narrow Gaussian.

Run from the repository root: ``python data/densities/make_fitted_densities.py`` (about 10 s).
"""
from pathlib import Path

import numpy as np
from pyscf import dft, gto, scf
from scipy.optimize import least_squares

from nnptutor.descriptors.densities import electron_count, write_density_file

BOHR = 0.529177210903  # Å
ATOMS = {  # symbol: (basis, ecp, spin, Z_val)
    "H": ("cc-pvtz", None, 1, 1),
    "C": ("ccecp-cc-pvtz", "ccecp", 2, 4),
    "N": ("ccecp-cc-pvtz", "ccecp", 3, 5),
    "O": ("ccecp-cc-pvtz", "ccecp", 2, 6),
}
N_GAUSSIANS = 3


def radial_density(symbol, basis, ecp, spin):
    """Spherically averaged density: r [Å], ρ(r) [e Å⁻³]."""
    mol = gto.M(atom=f"{symbol} 0 0 0", basis=basis, ecp=ecp, spin=spin, verbose=0)
    mf = scf.UHF(mol).run()
    dm = mf.make_rdm1().sum(axis=0)
    directions = dft.LebedevGrid.MakeAngularGrid(590)  # (590, 4): x, y, z, weight
    r = np.linspace(0.005, 5.0, 400)  # Å
    points = (r[:, None, None] / BOHR * directions[None, :, :3]).reshape(-1, 3)  # bohr
    ao = dft.numint.eval_ao(mol, points)
    rho = dft.numint.eval_rho(mol, ao, dm).reshape(len(r), -1)  # (n_r, 590) [bohr⁻³]
    rho = rho @ directions[:, 3] / directions[:, 3].sum()
    return r, rho / BOHR**3


def fit(r, rho, z_val, seed=0):
    """Three Gaussians, last amplitude from the normalisation; best of several starts."""

    def unpack(p):
        beta = np.exp(p[N_GAUSSIANS - 1 :])
        b = np.empty(N_GAUSSIANS)
        b[:-1] = p[: N_GAUSSIANS - 1]
        b[-1] = (z_val - np.sum(b[:-1] * (np.pi / beta[:-1]) ** 1.5)) / (np.pi / beta[-1]) ** 1.5
        return b, beta

    def residual(p):
        with np.errstate(all="ignore"):  # wild starting points may overflow: penalise them
            b, beta = unpack(p)
            model = (b * np.exp(-np.outer(r**2, beta))).sum(axis=1)
            return np.nan_to_num(4 * np.pi * r**2 * (model - rho), nan=1e6, posinf=1e6, neginf=-1e6)

    rng = np.random.default_rng(seed)
    best = None
    for _ in range(40):
        p0 = np.concatenate([rng.normal(scale=1.0, size=N_GAUSSIANS - 1), np.log(rng.uniform(0.3, 30, N_GAUSSIANS))])
        result = least_squares(residual, p0, method="lm", max_nfev=4000)
        if best is None or result.cost < best.cost:
            best = result
    b, beta = unpack(best.x)
    order = np.argsort(-beta)  # narrowest first
    rms = np.sqrt(np.mean(residual(best.x) ** 2))
    return [[float(b[k]), float(beta[k])] for k in order], rms


def main():
    table, notes = {}, []
    for symbol, (basis, ecp, spin, z_val) in ATOMS.items():
        r, rho = radial_density(symbol, basis, ecp, spin)
        table[symbol], rms = fit(r, rho, z_val)
        notes.append(
            f"{symbol}: Z_val {z_val}, integral {electron_count(table[symbol]):.6f} e, "
            f"rms error of 4 pi r^2 rho {rms:.2e} e/Å"
        )
        print(notes[-1])
    header = (
        "Gaussian valence densities for GMP: rho(r) = sum_g B_g exp(-beta_g r^2)\n"
        "units: B [e Å^-3], beta [Å^-2]; each element integrates to its valence charge\n"
        "made by data/densities/make_fitted_densities.py (UHF atoms in PySCF: H cc-pVTZ;\n"
        "C, N, O ccECP + ccecp-cc-pVTZ; 3-Gaussian least-squares fit of 4 pi r^2 rho)\n"
        + "\n".join(notes)
    )
    out = Path(__file__).resolve().parents[2] / "nnptutor" / "datasets" / "densities"
    write_density_file(out / "fitted_HCNO.gdens", table, header)


if __name__ == "__main__":
    main()
