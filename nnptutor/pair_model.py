r"""A pair potential network: one network per element pair on pair-centred features.

.. math:: E = \sum_Z n_Z \varepsilon_Z + \sum_{(A,B):\,R_{AB} \le r_c} E^{(Z_A Z_B)}(\tilde{\mathbf G}_{AB})

with G_AB from :class:`~nnptutor.descriptors.PairACSF` (scaled per pair type) and ε_Z the
per-element reference energies. Nothing here is new code: a
:class:`~nnptutor.models.BPNN` whose "elements" are the descriptor's pair types *is* the
pair network, and :class:`~nnptutor.potential.Potential`, :func:`nnptutor.train` and
:class:`~nnptutor.calculator.NNPCalculator` work on centres and types, whatever the
centres are. Forces follow by the chain rule through every pair's features:
F_k = −Σ_p Σ_f ∂E/∂G_pf · ∂G_pf/∂R_k.

Continuity: the potential subtracts E_pair(G_cut), the network's energy for a pair at
R_AB = r_c (:meth:`PairACSF.features_at_cutoff`), so a pair crossing the cutoff adds or
removes no energy (:func:`nnptutor.potential.scaled_center_energies`).

Taught in notebooks/08_pair_symmetry_functions.ipynb.
"""
from __future__ import annotations

from nnptutor.descriptors.pcsf import PairACSF


def PairPotential(descriptor: PairACSF, **model_kwargs):
    """A :class:`~nnptutor.potential.Potential` with one network per element pair.

    Parameters
    ----------
    descriptor : PairACSF
        The pair-centred descriptor; its ``type_labels`` ("Cu-Cu", "Cu-Pt", …) name the
        networks.
    **model_kwargs
        Passed to :class:`~nnptutor.models.BPNN` (``hidden``, ``activation``, ``seed``,
        ``dtype``).

    Returns
    -------
    Potential
        Untrained; fit it with :func:`nnptutor.train`, use it with
        :class:`nnptutor.NNPCalculator`. ``predict(atoms)["energies"]`` splits each pair
        energy equally between its two atoms.

    Examples
    --------
    >>> pot = PairPotential(PairACSF.default(["Cu"], r_cut=4.0), hidden=(16,))
    >>> pot.model.type_labels
    ('Cu-Cu',)
    """
    from nnptutor.models import BPNN
    from nnptutor.potential import Potential

    if not isinstance(descriptor, PairACSF):
        raise ValueError(
            f"PairPotential needs a PairACSF descriptor, got {type(descriptor).__name__}; "
            "for atom-centred descriptors use nt.Potential(descriptor, nt.BPNN(...))"
        )
    model = BPNN(descriptor.type_labels, descriptor.n_features, **model_kwargs)
    return Potential(descriptor, model)
