"""Dataset tools on extracted features: labels, alignment, lists, resampling, export, report."""
