"""Default values that ``--help`` shows, each defined once, here.

No imports: the command line builds every parser (``vadfeat --help``, and the start
of every command) from this module and :mod:`vadfeat._types` without importing the
library code that uses the values (numpy, PyAV, matplotlib).  The modules that
define behaviour with them (``io.video``, ``dataset.compare``) re-import them under
the same names.
"""

#: Largest frame (width x height) decoded by default: 8K UHD (7680 x 4320).  Beyond
#: it a video fails alone, before its frames are decoded when the header tells the
#: size (a 752 KB H.264 file at 16000 x 16000 took 6.6 GB and 4.5 minutes).  Raise it
#: with ``max_pixels=`` (``--max-pixels``).
DEFAULT_MAX_PIXELS = 7680 * 4320

#: PNGs ``compare -o`` draws unless asked (``--plots N`` / ``--plots all``): a plot took
#: 0.19 s on a 2-core machine, so one per video would take over half an hour for 10,000.
DEFAULT_PLOTS = 20

#: ``compare --recipes``'s sample: videos, and first snippets of each, extracted per candidate
#: recipe (``--sample-videos``, ``--sample-snippets``).  Eight snippets give compare's
#: per-dimension statistics their eight rows even with one crop.
DEFAULT_SAMPLE_VIDEOS = 3
DEFAULT_SAMPLE_SNIPPETS = 8
