"""Writers that take a trained potential from the course to other engines.

* :func:`write_n2p2`: a Behler–Parrinello potential on ACSF as n2p2 files (``input.nn``,
  ``scaling.data``, ``weights.NNN.data``), which LAMMPS reads with ``pair_style hdnnp``.
* :func:`write_input_data`: structures in n2p2's ``input.data`` format, to continue
  training in n2p2 itself or to predict with ``nnp-predict``.
* :func:`lammps_input`: the LAMMPS commands that use an exported potential.

Taught in notebooks/09_production_md.ipynb.
"""
from nnptutor.export.n2p2 import lammps_input, write_input_data, write_n2p2

__all__ = ["write_n2p2", "write_input_data", "lammps_input"]
