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

#: ``batch_size`` (``--batch-size``) by default, by what the backbone's model takes
#: (``Backbone.input_kind``): clips for clip backbones (VideoMAE, I3D: a k-crop snippet
#: is k clips), images for frame backbones (CLIP: a 16-frame k-crop snippet is 16 * k
#: images).  16 images per pass keep a 10-crop CLIP ViT-B/16 run on the CPU in fp32
#: within :data:`MEMORY_BUDGET`, at about a plain script's peak (README.md, "Memory";
#: BENCHMARKS.md, "Peak memory"), where counting clips made one pass of 160 images
#: (4.8 GB peak).  On a GPU the activations are in its memory: raise it there.
DEFAULT_BATCH_SIZE = {"clip": 8, "frame": 16}

#: The peak memory a run at default settings stays under, as the docs state it.
MEMORY_BUDGET = ("2 GB on the CPU for a 10-crop CLIP ViT-B/16 or I3D ResNet-50 run "
                 "(fp32, one decode thread)")

#: A sharded sink (``--sink webdataset`` / ``parquet``) commits a shard once it holds this
#: many videos (``--shard-size``) or this many MiB of features (``--shard-mb``), whichever
#: comes first, and its last one at the end of the run.  A video is done (and its claim,
#: one open file descriptor, held until then) only once its shard is committed.
DEFAULT_SHARD_SIZE = 1000
DEFAULT_SHARD_MB = 1024
