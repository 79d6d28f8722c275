"""vadfeat: VideoMAE V2 and CLIP features for weakly supervised video anomaly detection.

The public API; nothing else should need to import from deeper modules::

    import vadfeat
    summary = vadfeat.extract(["videos/"], "features/", checkpoint="vit_g_k710.pth",
                              preset="fed-wsvad")
    fx = vadfeat.FeatureExtractor("vit_b_k710_dl_from_giant.pth")
    result = fx.extract_video("clip.mp4")   # result.features, result.metadata
    clip = vadfeat.FeatureExtractor("ViT-B-16.pt")   # CLIP, detected: preset clip-vadclip
    vadfeat.list_backbones()                # videomae_v2, clip, and any plug-ins
"""

from vadfeat._version import __version__
from vadfeat.backbones._registry import (
    Backbone,
    FeatureHead,
    PretrainedCfg,
    detect_backbone,
    get_backbone,
    list_backbones,
    register_backbone,
    resolve_model_name,
)
from vadfeat.backbones.loading import load_model
from vadfeat.backbones.videomae.checkpoints import CheckpointInfo, load_checkpoint, save_canonical
from vadfeat.backbones.videomae.model import FeatureModel, ModelSpec, get_spec, list_models
from vadfeat.dataset.align import AlignedVideo, AlignResult, align
from vadfeat.dataset.compare import CompareResult, compare
from vadfeat.dataset.export import ExportResult, export
from vadfeat.dataset.labels import LabelError, LabelIssue, LabelSet, VideoLabels, read_labels, write_labels
from vadfeat.dataset.lists import ListsResult, read_video_list, write_lists
from vadfeat.dataset.report import InspectResult, inspect
from vadfeat.dataset.resample import process_feat, resample_features, uniform_sample, vadclip_sample
from vadfeat.engines.context import RunSummary
from vadfeat.engines.local import extract
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
from vadfeat.io.frames import dump_frames
from vadfeat.io.inputs import VideoItem, discover
from vadfeat.io.video import VideoInfo, VideoReader, open_video, probe
from vadfeat.pipeline.config import ExtractConfig
from vadfeat.pipeline.extractor import FeatureExtractor, VideoFeatures
from vadfeat.pipeline.presets import PRESETS, Preset, get_preset, list_presets
from vadfeat.pipeline.sampling import Snippet, SnippetAssembler, snippet_indices
from vadfeat.pipeline.transforms import FrameTransform, build_frame_transform
from vadfeat.store.reader import FeatureReadError, FeatureRecord, FeatureSet, read_features, video_key

__all__ = [
    "PRESETS",
    "AlignResult",
    "AlignedVideo",
    "Backbone",
    "CheckpointError",
    "CheckpointInfo",
    "CompareResult",
    "ConfigError",
    "DecodeError",
    "ExportResult",
    "ExtractConfig",
    "FeatureExtractor",
    "FeatureHead",
    "FeatureModel",
    "FeatureReadError",
    "FeatureRecord",
    "FeatureSet",
    "FrameTransform",
    "InspectResult",
    "LabelError",
    "LabelIssue",
    "LabelSet",
    "ListsResult",
    "ModelSpec",
    "Preset",
    "PretrainedCfg",
    "RunSummary",
    "Snippet",
    "SnippetAssembler",
    "UnknownModelError",
    "VadfeatError",
    "VideoError",
    "VideoFeatures",
    "VideoInfo",
    "VideoItem",
    "VideoLabels",
    "VideoOpenError",
    "VideoReader",
    "VideoTooShortError",
    "__version__",
    "align",
    "build_frame_transform",
    "compare",
    "detect_backbone",
    "discover",
    "dump_frames",
    "export",
    "extract",
    "get_backbone",
    "get_preset",
    "get_spec",
    "inspect",
    "list_backbones",
    "list_models",
    "list_presets",
    "load_checkpoint",
    "load_model",
    "open_video",
    "probe",
    "process_feat",
    "read_features",
    "read_labels",
    "read_video_list",
    "register_backbone",
    "resample_features",
    "resolve_model_name",
    "save_canonical",
    "snippet_indices",
    "uniform_sample",
    "vadclip_sample",
    "video_key",
    "write_labels",
    "write_lists",
]
