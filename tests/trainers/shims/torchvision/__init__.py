"""A torchvision stand-in: only ``transforms`` names, for VadCLIP's ``clip.py`` imports."""
