"""I3D backbones: the inflated ResNet-50 of ``pytorch-resnet3d`` and the InceptionV1 of ``pytorch-i3d``.

See :mod:`vadfeat.backbones.i3d.backbone` (registration), :mod:`.resnet`,
:mod:`.inception` (modules) and :mod:`.checkpoints` (released key layouts).
"""
