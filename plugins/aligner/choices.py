"""Names of the aligner's optional algorithms, in a module without imports, so that the command line
can offer them without importing scipy or torch."""
from __future__ import annotations

#: ``adam``, ``block-newton`` (per-module 6x6 Gauss-Newton steps) or ``hessian-free`` (whole-sample
#: Gauss-Newton solved by matrix-free CG, :mod:`.hessian_free`)
OPTIMIZERS = ("adam", "block-newton", "hessian-free")
#: CG preconditioners of the hessian-free optimizer (:mod:`.precondition`)
PRECONDITIONERS = ("block-jacobi", "two-level", "two-level-additive")
#: coarse groups of :func:`.precondition.structure_groups`: whole layers/disks, their rings (barrel: one
#: per z position of the staves' modules, disks: one per radius), or patches of ~k neighbouring modules
COARSE_LEVELS = ("layer", "ring", "aggregate")
