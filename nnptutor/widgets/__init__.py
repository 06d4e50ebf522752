"""Interactive widgets for the notebooks: thin ipywidgets over pure, tested functions.

One module per lecture. Each widget redraws a plain drawing function that the notebook also
calls once statically (the widget's *static twin*), so nbval checks the figure at its default
values and the controls only re-run it. Widget callbacks draw on a
``matplotlib.figure.Figure`` that pyplot does not know (see ``tests/browser/README.md``).
"""
from nnptutor.widgets.committee import selection_explorer, show_selection
from nnptutor.widgets.coulomb import coulomb_matrix_explorer, show_coulomb_forms
from nnptutor.widgets.cutoffs import cutoff_explorer, show_cutoffs
from nnptutor.widgets.gmp import gmp_explorer, show_gmp_probe
from nnptutor.widgets.pairs import pair_function_explorer, show_pair_functions
from nnptutor.widgets.symmetry import (
    angular_term,
    cosine_term,
    radial_term,
    show_symmetry_functions,
    symmetry_function_explorer,
)
from nnptutor.widgets.training import draw_training_runs, train_run, training_explorer
