"""Import torchvision through here: it makes PyPI's CUDA torchvision importable on a CPU torch.

torchvision 0.28.0 on PyPI is built against CUDA torch. Imported next to a CPU build of torch,
its Python code registers fake kernels for ``torchvision::nms`` and ``torchvision::qnms`` before
the compiled library that declares those ops could load, and the import fails with
``RuntimeError: operator torchvision::nms does not exist``. Declaring the two op schemas ourselves
lets the pure-Python parts (models, transforms) import. Where torchvision imports cleanly (a
matching build, e.g. on CUDA), nothing is declared.
"""

from __future__ import annotations

import sys

import torch

_declared: torch.library.Library | None = None  # must stay alive, or the schemas go away


def _import_torchvision():
    global _declared
    try:
        import torchvision
    except RuntimeError as err:
        if "torchvision::nms" not in str(err) or _declared is not None:
            raise
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]  # drop the half-initialised package before importing again
        _declared = torch.library.Library("torchvision", "DEF")
        _declared.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _declared.define("qnms(Tensor qdets, Tensor scores, float iou_threshold) -> Tensor")
        import torchvision
    return torchvision


torchvision = _import_torchvision()
