"""Synthetic test and demo media (videos, frame folders, label files)."""
