"""What vadfeat writes and reads back: layouts, atomic writes, sidecars, manifest, claims, feature reader."""
