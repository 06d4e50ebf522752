"""Make the static diagrams in figures/ (run from the repository root).

    python figures/make_figures.py

data_flow.png: the library's one-directional data flow, shown in README and notebook 00.
"""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch

HERE = Path(__file__).resolve().parent
STEPS = [
    ("ase.Atoms", "positions [Å]\nnumbers, cell, pbc"),
    ("neighbors", "pairs i, j within r_c\n(vesin)"),
    ("descriptors", "G (n_atoms, n_features)\nsparse dG/dR"),
    ("models", "E_i = NN_t(G_i)\n(torch)"),
    ("Potential", "E = Σ E_i + Σ ε_Z\nF = −∂E/∂G · ∂G/∂R"),
    ("NNPCalculator", "ASE calculator\nMD, optimisers"),
]


def data_flow(path: Path) -> None:
    fig, ax = plt.subplots(figsize=(12, 2.2))
    ax.set_xlim(0, len(STEPS) * 2)
    ax.set_ylim(0, 2)
    ax.axis("off")
    for k, (name, detail) in enumerate(STEPS):
        x = 2 * k + 0.15
        ax.add_patch(FancyBboxPatch((x, 0.35), 1.7, 1.3, boxstyle="round,pad=0.05",
                                    facecolor="#e8f0fb", edgecolor="#2b5aa6"))
        ax.text(x + 0.85, 1.3, name, ha="center", va="center", fontsize=11, weight="bold")
        ax.text(x + 0.85, 0.8, detail, ha="center", va="center", fontsize=8)
        if k < len(STEPS) - 1:
            ax.annotate("", xy=(x + 2.0, 1.0), xytext=(x + 1.8, 1.0),
                        arrowprops=dict(arrowstyle="->", lw=1.5, color="#2b5aa6"))
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


if __name__ == "__main__":
    data_flow(HERE / "data_flow.png")
    print("wrote", HERE / "data_flow.png")
