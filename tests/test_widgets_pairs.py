"""The pair-function explorer of notebook 08: pure functions against references, its
controls, and that every control changes the figure."""
import io

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pytest
from ase.build import bulk
from matplotlib.figure import Figure

from nnptutor.descriptors import PairACSF
from nnptutor.widgets.pairs import FIGSIZE, draw_pair_functions, pair_function_explorer, pairs_per_atom


def test_pairs_per_atom_counts_fcc_shells():
    """fcc: 12, 6, 24 neighbours in the first three shells (a/√2, a, a√1.5)."""
    np.testing.assert_array_equal(pairs_per_atom([2.0, 3.0, 4.0, 4.5]), [0, 6, 9, 21])


def test_pairs_per_atom_matches_the_descriptor():
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(3)
    for r_cut in (3.0, 5.0):
        n_pairs = len(PairACSF.default(["Cu"], r_cut=r_cut).pairs(atoms))
        assert pairs_per_atom([r_cut])[0] == n_pairs / len(atoms)


def test_explorer_controls_name_their_quantity_and_unit():
    widget = pair_function_explorer()
    assert [child.description for child in widget.children[:5]] == ["R_c [Å]", "η [Å⁻²]", "R_s [Å]", "ζ", "λ"]
    assert all(not child.continuous_update for child in widget.children[:5])


def _png(**changes):
    values = dict(r_cut=4.0, eta=0.78, r_s=2.5, zeta=1.0, lambda_=1.0) | changes
    fig = Figure(figsize=FIGSIZE, layout="tight")
    draw_pair_functions(fig, **values)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=40)
    return buffer.getvalue()


@pytest.mark.parametrize("change", [{"r_cut": 4.25}, {"eta": 1.0}, {"r_s": 2.75}, {"zeta": 2.0}, {"lambda_": -1.0}])
def test_every_control_changes_the_figure(change):
    assert _png(**change) != _png()
