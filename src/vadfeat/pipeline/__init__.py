"""From decoded frames to model input: snippet sampling, presets, per-frame transforms, settings checks."""
