"""Run engines: one process (``local``), several devices, and Ray (``ray``)."""
