"""CLIP image encoder backbone (OpenAI CLIP, Radford et al. 2021).

- :mod:`.model`: the vision transformer of openai/CLIP ``clip/model.py`` with OpenAI's
  parameter names (without the ``visual.`` prefix), its sizes and its two feature heads;
- :mod:`.checkpoints`: reading OpenAI TorchScript archives (without running their code),
  plain state dicts, safetensors, open_clip checkpoints and ``transformers`` folders
  into that layout.
"""
