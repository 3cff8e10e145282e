"""colorizer: colour transfer between images.

- :class:`NeuralColorTransfer`: photo-to-photo transfer through dense semantic correspondences
  (He et al., TOG 2019).
"""

from .hub import WeightsNotFoundError
from .images import ImageError
from .nct import NeuralColorTransfer, TransferOutput

__all__ = ["NeuralColorTransfer", "TransferOutput", "ImageError", "WeightsNotFoundError"]
__version__ = "0.1.0"
