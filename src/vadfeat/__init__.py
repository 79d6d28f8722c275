"""vadfeat: VideoMAE V2 features for weakly supervised video anomaly detection.

The public API; nothing else should need to import from deeper modules::

    import vadfeat
    summary = vadfeat.extract(["videos/"], "features/", checkpoint="vit_g_k710.pth",
                              preset="fed-wsvad")
    fx = vadfeat.FeatureExtractor("vit_b_k710_dl_from_giant.pth")
    result = fx.extract_video("clip.mp4")   # result.features, result.metadata
"""

from vadfeat._version import __version__
from vadfeat.checkpoints import CheckpointInfo, load_checkpoint, save_canonical
from vadfeat.errors import (
    CheckpointError,
    ConfigError,
    DecodeError,
    UnknownModelError,
    VadfeatError,
    VideoError,
    VideoOpenError,
    VideoTooShortError,
)
from vadfeat.extract import FeatureExtractor, RunSummary, VideoFeatures, extract
from vadfeat.inputs import VideoItem, discover
from vadfeat.loading import load_model
from vadfeat.models.videomae import FeatureModel, ModelSpec, get_spec, list_models
from vadfeat.presets import PRESETS, Preset, get_preset, list_presets
from vadfeat.sampling import Snippet, SnippetAssembler, snippet_indices
from vadfeat.transforms import FrameTransform, build_frame_transform
from vadfeat.video import VideoInfo, VideoReader, open_video, probe

__all__ = [
    "PRESETS",
    "CheckpointError",
    "CheckpointInfo",
    "ConfigError",
    "DecodeError",
    "FeatureExtractor",
    "FeatureModel",
    "FrameTransform",
    "ModelSpec",
    "Preset",
    "RunSummary",
    "Snippet",
    "SnippetAssembler",
    "UnknownModelError",
    "VadfeatError",
    "VideoError",
    "VideoFeatures",
    "VideoInfo",
    "VideoItem",
    "VideoOpenError",
    "VideoReader",
    "VideoTooShortError",
    "__version__",
    "build_frame_transform",
    "discover",
    "extract",
    "get_preset",
    "get_spec",
    "list_models",
    "list_presets",
    "load_checkpoint",
    "load_model",
    "open_video",
    "probe",
    "save_canonical",
    "snippet_indices",
]
