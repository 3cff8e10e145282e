"""Where the repository's own files lie: the example images, and the ``../shared`` folder of the
development setup (photos, paintings, VGG16 weights) beside the checkout.

One place for the tests, the benchmarks, training and the app. The paths resolve from this
package's folder, so they name the checkout's files when the package runs from a checkout (or an
editable install); nothing here exists in a wheel installed elsewhere, and every user checks
before reading.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository root
EXAMPLES = ROOT / "examples"
SHARED = ROOT.parent / "shared"
SHARED_PHOTOS = SHARED / "data" / "photos"
SHARED_PAIRS = SHARED_PHOTOS / "pairs.csv"
SHARED_ART = SHARED / "data" / "art"
SHARED_VGG16 = SHARED / "weights" / "vgg16_imagenet_features.safetensors"
