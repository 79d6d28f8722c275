"""Feature backbones: one sub-package per model family, plus generic checkpoint loading."""
