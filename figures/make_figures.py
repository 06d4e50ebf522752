"""Make the static diagrams in figures/ (run from the repository root).

    python figures/make_figures.py

data_flow.png: the library's one-directional data flow, shown in README and notebook 00.
bpnn_architecture.png, singlenn_architecture.png: how a Behler–Parrinello network (one
network per element) and SingleNN (one shared network, one output per element) turn the
atoms of a water molecule into the total energy; shown in notebooks 04 and 05.
"""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Circle, FancyBboxPatch

HERE = Path(__file__).resolve().parent
STEPS = [
    ("ase.Atoms", "positions [Å]\nnumbers, cell, pbc"),
    ("neighbors", "pairs i, j within r_c\n(vesin)"),
    ("descriptors", "G (n_atoms, n_features)\nsparse dG/dR"),
    ("models", "E_i = NN_t(G_i)\n(torch)"),
    ("Potential", "E = Σ E_i + Σ ε_Z\nF = −∂E/∂G · ∂G/∂R"),
    ("NNPCalculator", "ASE calculator\nMD, optimisers"),
]
# Okabe–Ito colours, as in nnptutor.plotting
ELEMENT_COLORS = {"O": "#D55E00", "H": "#0072B2"}
SHARED_COLOR = "#009E73"
ATOMS = ["O", "H", "H"]  # one water molecule, atoms i = 1, 2, 3


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


def _arrow(ax, start, end, color="0.3"):
    ax.annotate("", xy=end, xytext=start,
                arrowprops=dict(arrowstyle="->", lw=1.2, color=color, shrinkA=2, shrinkB=2))


def _network(ax, x0, y, color, outputs=(None,), chosen=0):
    """A fully connected net (4 inputs, two hidden layers of 5, len(outputs) outputs)
    centred vertically on y, starting at x0; output node ``chosen`` is filled.
    Returns the (x, y) of the chosen output node."""
    layers = [4, 5, 5, len(outputs)]
    xs = [x0 + 0.55 * k for k in range(len(layers))]
    ys = [[y + 0.16 * (j - (n - 1) / 2) for j in range(n)] for n in layers]
    ax.add_patch(FancyBboxPatch((x0 - 0.18, y - 0.5), xs[-1] - x0 + 0.36, 1.0,
                                boxstyle="round,pad=0.02", facecolor=color, alpha=0.12,
                                edgecolor=color))
    for k in range(len(layers) - 1):
        for ya in ys[k]:
            for yb in ys[k + 1]:
                ax.plot([xs[k], xs[k + 1]], [ya, yb], color=color, lw=0.4, alpha=0.6)
    for k, column in enumerate(ys):
        for j, yj in enumerate(column):
            last = k == len(layers) - 1
            filled = not last or j == chosen
            ax.add_patch(Circle((xs[k], yj), 0.045, facecolor=color if filled else "white",
                                edgecolor=color, lw=1, zorder=3))
            if last and outputs[j] is not None:
                ax.text(xs[k] + 0.08, yj, outputs[j], fontsize=8, va="center",
                        color=color if j == chosen else "0.5")
    return xs[-1], ys[-1][chosen]


def _architecture(path: Path, shared: bool) -> None:
    fig, ax = plt.subplots(figsize=(9.5, 4.6))
    ax.set_xlim(-0.3, 7.6)
    ax.set_ylim(-0.45, 4.0)
    ax.axis("off")
    rows = [2.9, 1.6, 0.3]  # y of atoms i = 1, 2, 3
    outputs = ("H", "O")  # SingleNN output nodes, one per element
    ends = []
    for i, (element, y) in enumerate(zip(ATOMS, rows), start=1):
        ax.add_patch(Circle((0.2, y), 0.22, facecolor=ELEMENT_COLORS[element], alpha=0.85))
        ax.text(0.2, y, element, ha="center", va="center", color="white", weight="bold")
        ax.text(0.2, y - 0.38, f"$\\mathbf{{R}}_{i}$", ha="center", fontsize=10)
        ax.add_patch(FancyBboxPatch((0.85, y - 0.28), 0.95, 0.56, boxstyle="round,pad=0.03",
                                    facecolor="#f2f2f2", edgecolor="0.4"))
        ax.text(1.32, y, f"$G_{i}$", ha="center", va="center", fontsize=12)
        _arrow(ax, (0.45, y), (0.83, y))
        _arrow(ax, (1.85, y), (2.25, y))
        if shared:
            color, label = SHARED_COLOR, "the shared network (same weights in every row)"
            x_out, y_out = _network(ax, 2.45, y, color, outputs, outputs.index(element))
        else:
            color, label = ELEMENT_COLORS[element], f"network of {element}"
            if element == "H":
                label += " (the same weights for both H)"
            x_out, y_out = _network(ax, 2.45, y, color)
        ax.text(3.3, y + 0.55, label, ha="center", fontsize=8, color=color)
        ax.text(5.0, y, f"$E_{i}$", ha="center", va="center", fontsize=12)
        _arrow(ax, (x_out + (0.3 if shared else 0.08), y_out), (4.8, y))
        ends.append((5.2, y))
    ax.add_patch(Circle((6.15, rows[1]), 0.3, facecolor="white", edgecolor="0.3"))
    ax.text(6.15, rows[1], "Σ", ha="center", va="center", fontsize=16)
    for end in ends:
        _arrow(ax, end, (5.85, rows[1]))
    _arrow(ax, (6.45, rows[1]), (6.95, rows[1]))
    ax.text(7.2, rows[1], "$E$", ha="center", va="center", fontsize=14)
    if shared:
        title = ("SingleNN: one network for every atom; its output layer has one node per "
                 "element,\nand atom i reads the node of its own element (filled)")
    else:
        title = ("Behler–Parrinello: one network per element; both H atoms use the "
                 "H network,\nthe O atom the O network")
    ax.text(3.6, 3.95, title, ha="center", va="top", fontsize=9.5)
    ax.text(1.32, -0.42, "symmetry functions\n(notebook 03)", ha="center", fontsize=8,
            color="0.35")
    ax.text(5.0, -0.42, "atomic energies [eV]", ha="center", fontsize=8, color="0.35")
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)


if __name__ == "__main__":
    data_flow(HERE / "data_flow.png")
    _architecture(HERE / "bpnn_architecture.png", shared=False)
    _architecture(HERE / "singlenn_architecture.png", shared=True)
    print("wrote data_flow.png, bpnn_architecture.png, singlenn_architecture.png in", HERE)
