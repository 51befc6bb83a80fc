"""Networks: semantic segmentation nets and the 2D/3D Mask R-CNN (:mod:`medseg.models.maskrcnn`).

Nothing is imported here, so ``import medseg.models`` stays light; import the submodules.
"""

from __future__ import annotations
