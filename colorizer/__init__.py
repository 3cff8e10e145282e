"""colorizer: colour transfer between images.

- :class:`NeuralColorTransfer`: photo-to-photo transfer through dense semantic correspondences
  (He et al., TOG 2019).
- :class:`StyleColorizer`: an AdaIN UNet that colorizes a gray image in the colours of any style
  image in one forward pass.
"""

from .config import TransferConfig
from .hub import WeightsNotFoundError
from .images import ImageError
from .nct import BatchOutput, NeuralColorTransfer, TransferOutput
from .style_colorizer import StyleColorizer

__all__ = [
    "NeuralColorTransfer", "TransferConfig", "TransferOutput", "BatchOutput", "StyleColorizer", "ImageError",
    "WeightsNotFoundError",
]
__version__ = "0.1.0"
