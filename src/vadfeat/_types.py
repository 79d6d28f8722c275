"""The allowed string (and crop-count) values of vadfeat's options, each defined once.

Every option that takes one of a fixed set of values has its ``Literal`` alias
here.  Library checks use ``typing.get_args(Alias)`` for the tuple of allowed
values and the command line derives its ``choices=`` from the same alias, so a
value added here is accepted everywhere at once (``tests/test_types.py`` checks
every ``choices=`` of the CLI against these).  The modules that used to define
some of them (``pipeline.presets``, ``io.video``, ``store.sinks.npy``,
``store.reader``, ``dataset.*``) re-import them under the same names.

No imports beyond ``typing``: any module may import this one.
"""

from __future__ import annotations

from typing import Literal

# -- decoding (io/)
#: What a corrupt packet does: fail that video, or skip the bad packets and go on.
OnCorrupt = Literal["fail", "skip"]
#: Colours of JPEG/PNG frame folders: true colours, or the legacy pipeline's swapped R/B.
FramesColour = Literal["normal", "legacy-swapped"]
#: Which library decodes containers: PyAV (default), or torchcodec (CPU, or NVDEC on CUDA runs).
Decoder = Literal["pyav", "torchcodec"]

# -- sampling and pixels (pipeline/)
#: A video's last, incomplete snippet: dropped, or padded by repeating the last frame.
Tail = Literal["drop", "pad"]
#: ``min_side``: frames whose shorter side is below ``legacy_min_side`` enlarged (OpenCV bilinear on
#: 8-bit values), others left as they are (pytorch-i3d's loader).
ResizeMode = Literal["short_side", "squash", "fixed", "legacy", "min_side"]
Interpolation = Literal["bilinear", "bicubic", "pil-bilinear", "pil-bicubic", "pil-lanczos"]
NumCrops = Literal[1, 3, 5, 10]
#: How sure ``compare --recipes`` is of its best recipe (``vadfeat.dataset.recipes``).
Confidence = Literal["sure", "likely", "unsure", "none"]
JpegRoundTrip = Literal["none", "ffmpeg", "opencv"]
CropOrder = Literal["torchvision", "centre-first", "reading"]
#: Where a centre crop starts: torchvision's ``round((L - size) / 2)`` (half to even), or
#: ``(L - size) // 2`` (video_features' ``TensorCenterCrop``).
CentreRounding = Literal["round", "floor"]
#: The second five of 10 crops: the five positions cut from the mirrored frame (torchvision's
#: ``ten_crop``), or each of the first five mirrored in place (``crop.flip(-1)``).
Mirror = Literal["frame", "crop"]
Scale = Literal["imagenet", "unit", "minus_one_one"]
ChannelOrder = Literal["RGB", "BGR"]
#: Where frames are resized/cropped/normalised: in the decode workers, or on the model's device.
Preprocess = Literal["worker", "device"]

# -- model (backbones/)
#: VideoMAE V2's feature heads: fc_norm [D], mean [D], stats [3, D].
VideoMAEPooling = Literal["fc_norm", "mean", "stats"]
#: CLIP's feature heads: embedding (``ln_post(cls) @ proj``), token (``ln_post(cls)``).
ClipFeature = Literal["embedding", "token"]
#: I3D's feature head: the global average pool before the classifier.
I3DFeature = Literal["pool"]
#: Feature heads of the built-in backbones (a plug-in backbone's heads are accepted too,
#: checked against the registry; the CLI offers every registered head).
#: VGGish's feature heads (:mod:`vadfeat.backbones.vggish.spec` says what each is).
VGGishHead = Literal["embedding", "embedding_prerelu", "postprocessed", "postprocessed_prerelu"]
#: How VGGish's postprocessing maps [0, 255] floats to integers: ``floor`` (the TensorFlow
#: release's ``astype(np.uint8)``) or ``round`` (torchvggish's ``torch.round``).
VGGishQuantize = Literal["floor", "round"]
#: An audio example that would start before the track (``first``) or end after it
#: (``tail``): ``pad`` reads silence outside the track, ``clamp`` shifts it inside
#: (:mod:`vadfeat.pipeline.audio_grid`).
AudioEdge = Literal["pad", "clamp"]
Pooling = Literal[VideoMAEPooling, ClipFeature, I3DFeature, VGGishHead]
#: What a backbone consumes: clips ``[B, 3, T, H, W]`` or frames ``[B, 3, H, W]``.
InputKind = Literal["clip", "frame"]
#: Frame-level backbones: a snippet's feature is the mean of its frames' or the middle frame's.
FrameReduce = Literal["mean", "middle"]
#: Float dtypes by name (``vadfeat.backbones._files.TORCH_DTYPES`` maps them to torch dtypes).
DTypeName = Literal["fp32", "bf16", "fp16"]
#: ``auto``: bf16 on CUDA, fp32 elsewhere.
DTypeOrAuto = Literal["auto", DTypeName]
Quantize = Literal["int8"]

# -- runs (engines/) and outputs (store/)
Engine = Literal["local", "ray"]
#: Where the local engine decodes and transforms: threads of the model's process, or
#: worker processes that hand snippets over through shared memory.
Pipeline = Literal["threads", "processes"]
Layout = Literal["flat", "fed-wsvad", "per-crop"]
LayoutOrAuto = Literal["auto", Layout]
#: What a run writes: ``.npy`` files + sidecars per video (in a ``Layout``), or shards
#: that pack many videos each (tar as the webdataset library reads it, or Parquet).
SinkName = Literal["npy", "webdataset", "parquet"]
#: The sinks that pack videos into shards (``--sink``).
ShardSink = Literal["webdataset", "parquet"]

# -- dataset tools (dataset/)
LabelFormat = Literal["canonical", "pickle", "npy-dir", "ucf", "xd"]
LabelFormatOrAuto = Literal["auto", LabelFormat]
AlignMode = Literal["exact", "legacy"]
SnippetRule = Literal["max", "mean", "majority"]
ExportFormat = Literal["rtfm", "ur-dmu", "pel4vad", "vadclip", "fed-wsvad", "flat", "per-crop",
                       "webdataset", "parquet"]
ListFormat = Literal["fed-wsvad", "rtfm", "ur-dmu", "pel4vad", "vadclip", "xdviodet", "macil-sd"]
Dataset = Literal["ucf", "xd", "shanghaitech"]
#: How list file names are formed (one convention per dataset).
Naming = Dataset
Split = Literal["train", "test"]
ResampleMethod = Literal["mean", "uniform", "vadclip"]

__all__ = [
    "AlignMode",
    "CentreRounding",
    "ChannelOrder",
    "ClipFeature",
    "Confidence",
    "CropOrder",
    "DTypeName",
    "DTypeOrAuto",
    "Dataset",
    "Decoder",
    "Engine",
    "ExportFormat",
    "FrameReduce",
    "FramesColour",
    "I3DFeature",
    "InputKind",
    "Interpolation",
    "JpegRoundTrip",
    "LabelFormat",
    "LabelFormatOrAuto",
    "Layout",
    "LayoutOrAuto",
    "ListFormat",
    "Mirror",
    "Naming",
    "NumCrops",
    "OnCorrupt",
    "Pipeline",
    "Pooling",
    "Preprocess",
    "Quantize",
    "ResampleMethod",
    "ResizeMode",
    "Scale",
    "ShardSink",
    "SinkName",
    "SnippetRule",
    "Split",
    "Tail",
    "VideoMAEPooling",
]
