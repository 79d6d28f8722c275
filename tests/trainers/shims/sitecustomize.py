"""CPU shims for running the upstream trainers without a GPU (tests/trainers/run_trainers.py).

Imported by Python at start-up when this folder is on PYTHONPATH.  Each shim only removes
a dependence on hardware or on a service, never on a feature width:

- ``Tensor.cuda`` and ``Module.cuda`` return the object unchanged (the trainers call
  ``.cuda()`` unconditionally); ``torch.cuda.set_device`` does nothing.
- ``visdom`` (RTFM, UR-DMU plot to a visdom server) is the no-op module beside this file.
- ``torchvision.transforms`` (VadCLIP's ``clip.py`` imports it for image preprocessing
  that training on features never calls) is the stub package beside this file.
"""

from __future__ import annotations

try:
    import torch
except ImportError:  # not a trainer process
    torch = None  # type: ignore[assignment]

if torch is not None:
    def _same(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return self

    torch.Tensor.cuda = _same  # type: ignore[method-assign]
    torch.nn.Module.cuda = _same  # type: ignore[method-assign]
    torch.cuda.set_device = lambda *args, **kwargs: None  # type: ignore[assignment]
