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

import importlib
from typing import TYPE_CHECKING, Any

from vadfeat._version import __version__

# Where each public name lives.  Nothing is imported until a name is first read
# (PEP 562), so that `import vadfeat` and the commands that run no model (lists,
# labels, export ...) do not pay for torch and the model code.
_HOMES: dict[str, str] = {
    "Backbone": "vadfeat.backbones._registry",
    "FeatureHead": "vadfeat.backbones._registry",
    "PretrainedCfg": "vadfeat.backbones._registry",
    "Sniffed": "vadfeat.backbones._registry",
    "detect_backbone": "vadfeat.backbones._registry",
    "get_backbone": "vadfeat.backbones._registry",
    "list_backbones": "vadfeat.backbones._registry",
    "register_backbone": "vadfeat.backbones._registry",
    "resolve_model_name": "vadfeat.backbones._registry",
    "load_model": "vadfeat.backbones.loading",
    "CheckpointInfo": "vadfeat.backbones.videomae.checkpoints",
    "load_checkpoint": "vadfeat.backbones.videomae.checkpoints",
    "save_canonical": "vadfeat.backbones.videomae.checkpoints",
    "FeatureModel": "vadfeat.backbones.videomae.model",
    "ModelSpec": "vadfeat.backbones.videomae.model",
    "get_spec": "vadfeat.backbones.videomae.model",
    "list_models": "vadfeat.backbones.videomae.model",
    "AlignResult": "vadfeat.dataset.align",
    "AlignedVideo": "vadfeat.dataset.align",
    "align": "vadfeat.dataset.align",
    "CompareResult": "vadfeat.dataset.compare",
    "compare": "vadfeat.dataset.compare",
    "RecipeRanking": "vadfeat.dataset.recipes",
    "compare_recipes": "vadfeat.dataset.recipes",
    "ExportResult": "vadfeat.dataset.export",
    "export": "vadfeat.dataset.export",
    "LabelError": "vadfeat.dataset.labels",
    "LabelIssue": "vadfeat.dataset.labels",
    "LabelSet": "vadfeat.dataset.labels",
    "VideoLabels": "vadfeat.dataset.labels",
    "read_labels": "vadfeat.dataset.labels",
    "write_labels": "vadfeat.dataset.labels",
    "ListsResult": "vadfeat.dataset.lists",
    "read_video_list": "vadfeat.dataset.lists",
    "write_lists": "vadfeat.dataset.lists",
    "InspectResult": "vadfeat.dataset.report",
    "inspect": "vadfeat.dataset.report",
    "process_feat": "vadfeat.dataset.resample",
    "resample_features": "vadfeat.dataset.resample",
    "uniform_sample": "vadfeat.dataset.resample",
    "vadclip_sample": "vadfeat.dataset.resample",
    "RunSummary": "vadfeat.engines.context",
    "extract": "vadfeat.engines.local",
    "CheckpointError": "vadfeat.errors",
    "ConfigError": "vadfeat.errors",
    "DecodeError": "vadfeat.errors",
    "UnknownModelError": "vadfeat.errors",
    "UnrecognizedCheckpointError": "vadfeat.errors",
    "VadfeatError": "vadfeat.errors",
    "VideoError": "vadfeat.errors",
    "VideoOpenError": "vadfeat.errors",
    "VideoTooShortError": "vadfeat.errors",
    "dump_frames": "vadfeat.store.frames",
    "VideoItem": "vadfeat.io.inputs",
    "discover": "vadfeat.io.inputs",
    "VideoInfo": "vadfeat.io.video",
    "VideoReader": "vadfeat.io.video",
    "open_video": "vadfeat.io.video",
    "probe": "vadfeat.io.video",
    "ExtractConfig": "vadfeat.pipeline.config",
    "FeatureExtractor": "vadfeat.pipeline.extractor",
    "VideoFeatures": "vadfeat.store.sinks.base",
    "PRESETS": "vadfeat.pipeline.presets",
    "Preset": "vadfeat.pipeline.presets",
    "get_preset": "vadfeat.pipeline.presets",
    "list_presets": "vadfeat.pipeline.presets",
    "Snippet": "vadfeat.pipeline.sampling",
    "SnippetAssembler": "vadfeat.pipeline.sampling",
    "snippet_indices": "vadfeat.pipeline.sampling",
    "FrameTransform": "vadfeat.pipeline.transforms",
    "build_frame_transform": "vadfeat.pipeline.transforms",
    "FeatureReadError": "vadfeat.store.reader",
    "FeatureRecord": "vadfeat.store.reader",
    "FeatureSet": "vadfeat.store.reader",
    "read_features": "vadfeat.store.reader",
    "video_key": "vadfeat.store.reader",
}


# Sub-packages that `import vadfeat` used to import as a side effect: `vadfeat.errors.X`
# after a bare `import vadfeat` still works (it imports the sub-package then).
_SUBPACKAGES = frozenset({"backbones", "dataset", "engines", "errors", "io", "pipeline", "store"})


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"vadfeat.{name}")
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'vadfeat' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # the next read is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # what type checkers and IDEs see: the eager imports
    from vadfeat.backbones._registry import (
        Backbone,
        FeatureHead,
        PretrainedCfg,
        Sniffed,
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
    from vadfeat.dataset.labels import (
        LabelError,
        LabelIssue,
        LabelSet,
        VideoLabels,
        read_labels,
        write_labels,
    )
    from vadfeat.dataset.lists import ListsResult, read_video_list, write_lists
    from vadfeat.dataset.recipes import RecipeRanking, compare_recipes
    from vadfeat.dataset.report import InspectResult, inspect
    from vadfeat.dataset.resample import process_feat, resample_features, uniform_sample, vadclip_sample
    from vadfeat.engines.context import RunSummary
    from vadfeat.engines.local import extract
    from vadfeat.errors import (
        CheckpointError,
        ConfigError,
        DecodeError,
        UnknownModelError,
        UnrecognizedCheckpointError,
        VadfeatError,
        VideoError,
        VideoOpenError,
        VideoTooShortError,
    )
    from vadfeat.io.inputs import VideoItem, discover
    from vadfeat.io.video import VideoInfo, VideoReader, open_video, probe
    from vadfeat.pipeline.config import ExtractConfig
    from vadfeat.pipeline.extractor import FeatureExtractor
    from vadfeat.pipeline.presets import PRESETS, Preset, get_preset, list_presets
    from vadfeat.pipeline.sampling import Snippet, SnippetAssembler, snippet_indices
    from vadfeat.pipeline.transforms import FrameTransform, build_frame_transform
    from vadfeat.store.frames import dump_frames
    from vadfeat.store.reader import FeatureReadError, FeatureRecord, FeatureSet, read_features, video_key
    from vadfeat.store.sinks.base import VideoFeatures

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
    "RecipeRanking",
    "RunSummary",
    "Sniffed",
    "Snippet",
    "SnippetAssembler",
    "UnknownModelError",
    "UnrecognizedCheckpointError",
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
    "compare_recipes",
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
