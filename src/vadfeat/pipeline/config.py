"""One extraction's settings: :class:`ExtractConfig`, validated and resolved without a model.

Every engine (local, ``--devices``, Ray) and the settings fingerprint are driven by an
:class:`ExtractConfig`.  Building one (:meth:`ExtractConfig.from_settings`) refuses, with
a :class:`~vadfeat.errors.ConfigError`, every setting that would otherwise fail later,
per video or at the first forward pass: frame rates that are not positive numbers,
batch sizes that are not positive integers, preset overrides of the wrong type or
range, unknown choices, and a clip that is not whole tubelets of the model (geometry
from ``model=`` or from the checkpoint's header: no weights are read, no model is
built).  :meth:`ExtractConfig.identify` reads what the fingerprint needs from the
checkpoint (its hash and architecture, ``.pth`` files memory-mapped) without building
the model; :meth:`ExtractConfig.fingerprint` is the one function that makes the
fingerprint, for the run planner and for a loaded model alike.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, get_args

import torch

from vadfeat._defaults import DEFAULT_BATCH_SIZE, DEFAULT_SHARD_MB, DEFAULT_SHARD_SIZE
from vadfeat._types import FramesColour, OnCorrupt, Preprocess, SinkName
from vadfeat.backbones._registry import canonical_model_name
from vadfeat.backbones.loading import parse_dtype
from vadfeat.errors import ConfigError
from vadfeat.io.torchcodec_video import check_decoder
from vadfeat.io.video import DEFAULT_FOLDER_FPS, DEFAULT_MAX_PIXELS, check_max_pixels, check_stream
from vadfeat.pipeline.audio_stream import audio_backbone_of, check_audio_settings, grid_source_digest
from vadfeat.pipeline.presets import DEFAULT_PRESET, Preset, get_preset
from vadfeat.pipeline.validate import (
    check_batch_size,
    check_geometry,
    check_model_geometry,
    default_preset,
    peek_geometry,
)
from vadfeat.store.fingerprint import set_model_name_canonicaliser
from vadfeat.store.sinks.npy import check_layout

# A fingerprint names its model as the backbones' registry spells it, and the store (below
# the backbones) compares fingerprints: every run makes its fingerprint through this module,
# so the registry's spelling rule is installed here, before any comparison.
set_model_name_canonicaliser(canonical_model_name)

_ON_CORRUPT = get_args(OnCorrupt)
_FRAMES_COLOUR = get_args(FramesColour)
_PREPROCESS = get_args(Preprocess)
_SINKS = get_args(SinkName)


#: Settings of :func:`vadfeat.extract` (and ``vadfeat extract``'s options) that change the
#: numbers in the feature files: each is in the fingerprint (preset fields through the
#: resolved preset), so resume never mixes outputs of different values.
#: ``on_corrupt`` decides whether a damaged video has features at all; ``layout``
#: decides the files; ``folder_fps`` sets the timeline of frame folders for ``fps``;
#: ``decoder``: torchcodec's colour conversion (swscale or a filter graph on the CPU, CUDA
#: kernels with NVDEC) need not give PyAV's pixels, so a resume never mixes decoders.
#: ``stream``: which video stream of a file is read.  ``pca``: the AudioSet PCA file of
#: VGGish's postprocessed heads; ``grid_from``: the visual extraction whose rows an audio run
#: follows.
CONTENT_SETTINGS = frozenset({
    "checkpoint", "model", "backbone", "random_weights", "num_heads", "preset", "dtype", "fps",
    "frames_colour", "folder_fps", "on_corrupt", "quantize", "preprocess", "layout", "decoder",
    "stream", "pca", "grid_from",
    *Preset.field_names(),
})
#: Settings that do not change the numbers (where the work runs, how fast, what is
#: printed).  ``batch_size`` changes float32 summation order only (below 1e-6 here);
#: ``device`` is not recorded: where it changes the numbers, it is through ``dtype``
#: (``auto`` = bf16 on CUDA, fp32 on the CPU), which is.
RUN_SETTINGS = frozenset({
    "inputs", "out", "device", "devices", "batch_size", "workers", "overwrite", "progress",
    "root", "extractor", "config", "run_token", "wait", "pipeline",
    # Where the outputs go and in what container, as ``out``: ``.npy`` files or shards
    # (a sink's name, or a ready sink in the library), and when a shard is committed.  A
    # folder's features are the same whichever sink holds them (its sidecars say which).
    "sink", "shard_size", "shard_mb",
    # Decides only whether a video is refused; an accepted video's features do not depend on it.
    "max_pixels",
})


# ``batch_size`` counts what one forward pass of the model takes, which depends on the
# backbone's ``input_kind``: clips for clip backbones (VideoMAE, I3D: a k-crop snippet
# is k clips), images for frame backbones (CLIP: a snippet of T frames and k crops is
# T * k images, k with ``frame_reduce="middle"``).  Its default (``None``) is
# DEFAULT_BATCH_SIZE of them (vadfeat._defaults: the memory budget it keeps).


def inputs_per_snippet(preset: Preset, input_kind: str) -> int:
    """Model inputs (clips or images, see :data:`DEFAULT_BATCH_SIZE`) one snippet makes."""
    if input_kind == "frame":
        return preset.crops * (1 if preset.frame_reduce == "middle" else preset.clip_len)
    return preset.crops


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto`` = the first CUDA device if there is one, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = _parse_device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but no CUDA device is available")
    return dev


def _parse_device(device: str | torch.device) -> torch.device:
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from exc


def resolve_dtype(dtype: str, device: torch.device) -> str:
    """``auto`` = bf16 on CUDA (fast, features within ~1 % of fp32), fp32 on the CPU."""
    if dtype == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    parse_dtype(dtype)
    return dtype


def check_preprocess(preprocess: str, preset: Preset) -> str:
    """Validate where frames are preprocessed: ``"worker"`` (decode threads) or ``"device"``.

    The legacy one-crop resize (``fed-wsvad``) is OpenCV's 8-bit arithmetic on
    numpy arrays, which its features must match; it cannot run on a device.
    """
    if preprocess not in _PREPROCESS:
        raise ConfigError(f"preprocess must be one of {', '.join(_PREPROCESS)}, got {preprocess!r}")
    if preprocess == "device" and preset.resize == "min_side":
        raise ConfigError(
            f"preset {preset.name!r} enlarges small frames with OpenCV on 8-bit values "
            "(resize 'min_side'), on the CPU; use preprocess='worker' (the default)"
        )
    if preprocess == "device" and preset.crops == 1 and preset.resize == "legacy":
        raise ConfigError(
            f"preset {preset.name!r} resizes with the legacy OpenCV path, which cannot run on "
            "the device; use preprocess='worker' (the default)"
        )
    if preprocess == "device" and preset.interpolation.startswith("pil-"):
        raise ConfigError(
            f"preset {preset.name!r} resizes with Pillow ({preset.interpolation}), on 8-bit frames "
            "on the CPU; use preprocess='worker' (the default)"
        )
    return preprocess


def check_fit(preset: Preset, spec: Any, *, backbone: Any = None, model: str = "the model") -> None:
    """A clip of ``preset`` must fit the model: the one place the engine checks geometry.

    ``spec``: a registered architecture of ``backbone``
    (:func:`~vadfeat.pipeline.validate.check_model_geometry`), or ``(tubelet, patch)``
    peeked from a checkpoint's header (named ``model``), or ``None`` (unknown: nothing
    to check).
    """
    if spec is None:
        return
    if isinstance(spec, tuple):
        check_geometry(preset, tubelet=spec[0], patch=spec[1], model=model)
    else:
        check_model_geometry(preset, spec, backbone=backbone)


def check_sink_settings(sink: Any, layout: str, shard_size: Any, shard_mb: Any) -> SinkName:
    """``sink`` (a :data:`~vadfeat._types.SinkName`) when it fits ``layout`` and the shard
    limits are valid; else :class:`ConfigError` saying which setting and why.

    Only the ``.npy`` sink has layouts: a sharded sink packs every video into its shards,
    so a ``layout`` other than ``flat`` is refused with it.  ``shard_size``: videos per
    shard, a positive integer; ``shard_mb``: MiB of features per shard, a positive number
    (checked whatever the sink, so a config file's typo is seen on the first run).
    """
    if sink not in _SINKS:
        raise ConfigError(f"unknown sink {sink!r}; choose one of {', '.join(_SINKS)}")
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise ConfigError(f"shard_size (--shard-size) must be a positive number of videos, "
                          f"got {shard_size!r}")
    if (isinstance(shard_mb, bool) or not isinstance(shard_mb, (int, float))
            or not math.isfinite(shard_mb) or shard_mb <= 0):
        raise ConfigError(f"shard_mb (--shard-mb) must be a positive number of MiB, got {shard_mb!r}")
    if sink != "npy" and layout != "flat":
        raise ConfigError(f"--layout {layout} places .npy files; --sink {sink} writes shards, which "
                          "have no layouts (each video is a member of a shard under its output "
                          "name): leave --layout out (flat), or use --sink npy")
    return sink


def settings_fingerprint(*, preset: Preset, model: str, checkpoint_sha256: str | None,
                         random_weights: bool, dtype: str, fps: float | None,
                         frames_colour: str, on_corrupt: str, layout: str,
                         quantize: str | None = None, preprocess: str = "worker",
                         folder_fps: float = DEFAULT_FOLDER_FPS,
                         num_heads: int | None = None, decoder: str = "pyav",
                         stream: int | None = None, pca: Mapping[str, Any] | None = None,
                         grid_from: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The settings that decide an output's content; resume skips only on a match.

    ``quantize``, ``preprocess``, ``folder_fps``, ``num_heads``, ``decoder``, ``stream``,
    ``pca`` (``{"sha256", "quantize"}`` of ``--pca``) and ``grid_from`` (``{"sha256"}`` of the
    grid source's sidecars, :func:`~vadfeat.pipeline.audio_stream.grid_source_digest`) appear only
    when not the default, so outputs made before those keys existed still resume
    (:data:`vadfeat.store.fingerprint.FINGERPRINT_DEFAULTS`).  Which settings are here and
    which are not is :data:`CONTENT_SETTINGS` / :data:`RUN_SETTINGS`.
    """
    return {
        "preset": preset.resolved().to_dict(),
        "model": model,
        "checkpoint_sha256": checkpoint_sha256,
        "random_weights": random_weights,
        "dtype": dtype,
        "fps": fps,
        "frames_colour": frames_colour,
        "on_corrupt": on_corrupt,
        "layout": layout,
        **({"quantize": quantize} if quantize else {}),
        **({"preprocess": preprocess} if preprocess == "device" else {}),
        **({"folder_fps": float(folder_fps)} if float(folder_fps) != DEFAULT_FOLDER_FPS else {}),
        **({"num_heads": num_heads} if num_heads is not None else {}),
        **({"decoder": decoder} if decoder != "pyav" else {}),
        **({"stream": stream} if stream is not None else {}),
        **({"pca": dict(pca)} if pca is not None else {}),
        **({"grid_from": dict(grid_from)} if grid_from is not None else {}),
    }


@dataclass(frozen=True)
class ModelIdentity:
    """What the fingerprint needs to know about the model: read from a checkpoint's file
    (:meth:`ExtractConfig.identify`) or from a loaded model (:meth:`of_model`)."""

    name: str
    checkpoint_sha256: str | None
    random_weights: bool
    quantize: str | None

    @classmethod
    def of_record(cls, record: Mapping[str, Any]) -> ModelIdentity:
        """From a loaded model's sidecar record (:meth:`FeatureExtractor.model_record`)."""
        return cls(name=record["name"], checkpoint_sha256=record["checkpoint_sha256"],
                   random_weights=bool(record["random_weights"]), quantize=record["quantize"])


def _positive_number(name: str, value: Any, *, optional: bool) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
        math.isfinite(value) and value > 0
    ):
        raise ConfigError(f"{name} must be a positive number of frames per second, got {value!r}")


def _resolve_preset(preset: Any, overrides: Mapping[str, Any]) -> Preset:
    if isinstance(preset, Preset):
        base = preset
    elif isinstance(preset, str):
        base = get_preset(preset)
    else:
        raise ConfigError(f"preset must be a preset name, got {preset!r}")
    return base.replace(**overrides) if overrides else base


def _check_preset_fits(s: Mapping[str, Any], overrides: Mapping[str, Any]) -> Preset:
    """The preset asked for (default: the backbone's) with ``overrides``, checked against the
    architecture named by ``model`` / ``backbone``, else against the checkpoint's header."""
    from vadfeat.backbones._registry import pick_backbone

    model, backbone, checkpoint = s.get("model"), s.get("backbone"), s.get("checkpoint")
    bb, arch = (pick_backbone(model=model, backbone=backbone) if model is not None or backbone is not None
                else (None, None))
    preset = _resolve_preset(default_preset(s), overrides)
    arch_name = (arch or bb.default_arch()) if bb is not None else None
    if bb is not None and arch_name is not None:
        check_fit(preset, bb.architectures()[arch_name], backbone=bb)
    elif checkpoint is not None:
        check_fit(preset, peek_geometry(checkpoint), model=f"the model in {checkpoint}")
    return preset


#: How the postprocessed heads round to 8 bits: the AudioSet release's ``astype(np.uint8)``
#: (floor; :mod:`vadfeat.backbones.vggish.pca`), recorded in the fingerprint with ``--pca``.
PCA_QUANTIZE = "floor"


def _file_sha256(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).expanduser().read_bytes()).hexdigest()
    except OSError as exc:
        raise ConfigError(f"--pca {path}: cannot read it ({exc})") from exc


def _check_audio(s: Mapping[str, Any], preset: Preset) -> tuple[str | None, str | None]:
    """``(pca, grid_from)``, checked: both only for a backbone whose stream is audio, whose own
    rules then apply (:func:`~vadfeat.pipeline.audio_stream.check_audio_settings`)."""
    pca, grid_from = s.get("pca"), s.get("grid_from")
    for name, value in (("pca", pca), ("grid_from", grid_from)):
        if value is not None and not isinstance(value, (str, Path)):
            raise ConfigError(f"{name} must be a path, got {value!r}")
    bb = audio_backbone_of(SimpleNamespace(checkpoint=s.get("checkpoint"), model=s.get("model"),
                                           backbone=s.get("backbone")))  # None: not audio, or unknown yet
    if bb is None:
        if pca is not None or grid_from is not None:
            raise ConfigError("--pca and --grid-from are for audio backbones (--model vggish/vggish)")
        return None, None
    pca = None if pca is None else str(Path(pca).expanduser().absolute())
    grid_from = None if grid_from is None else str(Path(grid_from).expanduser().absolute())
    check_audio_settings({**s, "pca": pca, "grid_from": grid_from}, preset, bb)
    if grid_from is not None:
        grid_source_digest(grid_from, fresh=True)  # a folder with sidecars, or a ConfigError now
    return pca, grid_from


@dataclass(frozen=True)
class ExtractConfig:
    """Every setting of one extraction, validated; the preset with its overrides resolved.

    Build it with :meth:`from_settings` (the keyword arguments of
    :class:`~vadfeat.FeatureExtractor` / :func:`vadfeat.extract`, plus ``layout`` and the
    output's container: ``sink``, ``shard_size``, ``shard_mb``);
    the constructor itself does not validate.  ``preset`` is the resolved
    :class:`Preset`; ``overrides`` the preset fields given explicitly (recorded in
    sidecars).  ``device`` and ``dtype`` stay as asked (``auto``); they are resolved
    on the machine that runs the model.  Two configs are equal when every setting is.
    """

    checkpoint: str | Path | None = None
    model: str | None = None
    backbone: str | None = None
    preset: Preset = field(default_factory=lambda: get_preset(DEFAULT_PRESET))
    overrides: tuple[tuple[str, Any], ...] = ()
    random_weights: bool = False
    device: str = "auto"
    dtype: str = "auto"
    #: clips or images per forward pass (:data:`DEFAULT_BATCH_SIZE`); ``None``: the default
    batch_size: int | None = None
    num_heads: int | None = None
    on_corrupt: str = "fail"
    fps: float | None = None
    frames_colour: str = "normal"
    folder_fps: float = DEFAULT_FOLDER_FPS
    quantize: str | None = None
    preprocess: str = "worker"
    max_pixels: int = DEFAULT_MAX_PIXELS
    layout: str = "flat"
    decoder: str = "pyav"
    #: the container stream to read (``--stream``); ``None``: the one a user means
    #: (:func:`vadfeat.io.video.open_video`)
    stream: int | None = None
    #: the AudioSet PCA file of an audio backbone's postprocessed heads (``--pca``)
    pca: str | None = None
    #: a vadfeat visual extraction whose rows an audio run follows (``--grid-from``)
    grid_from: str | None = None
    #: what the run writes (``--sink``): ``npy`` files per video, or ``webdataset`` /
    #: ``parquet`` shards; not in the fingerprint (the features are the same)
    sink: str = "npy"
    #: a shard is committed at this many videos (``--shard-size``) ...
    shard_size: int = DEFAULT_SHARD_SIZE
    #: ... or this many MiB of features (``--shard-mb``), whichever comes first
    shard_mb: float = DEFAULT_SHARD_MB

    @classmethod
    def own_settings(cls) -> frozenset[str]:
        """Setting names that are not preset overrides (``preset`` included)."""
        return frozenset(f.name for f in dataclasses.fields(cls)) - {"overrides"}

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any] | None = None, /,
                      **more: Any) -> ExtractConfig:
        """Validate ``settings`` (missing ones take their defaults) into a config.

        Names that are not the config's own are preset overrides (``None`` = not
        given).  Raises :class:`~vadfeat.errors.ConfigError` (unknown model and
        preset names included) before any model exists; ``batch_size`` above
        :data:`~vadfeat.pipeline.validate.MAX_BATCH_SIZE` is capped with a warning.
        """
        s = {**(settings or {}), **more}
        own = cls.own_settings()
        overrides = {k: v for k, v in s.items() if k not in own and v is not None}
        checkpoint, model = s.get("checkpoint"), s.get("model")
        random_weights = s.get("random_weights", False)
        if checkpoint is None and not random_weights:
            raise ConfigError("a checkpoint is required: pass checkpoint=PATH, or random_weights=True "
                              "to run with random weights for testing")
        if checkpoint is not None and random_weights:
            raise ConfigError("give either checkpoint=PATH or random_weights=True, not both")
        if checkpoint is not None and not isinstance(checkpoint, (str, Path)):
            raise ConfigError(f"checkpoint must be a path, got {checkpoint!r}")
        if model is not None and not isinstance(model, str):
            raise ConfigError(f"model must be a model name, got {model!r}")
        for name in ("device", "dtype", "on_corrupt", "frames_colour", "preprocess", "decoder"):
            value = s.get(name)
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"{name} must be a string, got {value!r}")
        num_heads = s.get("num_heads")
        if num_heads is not None and (isinstance(num_heads, bool) or not isinstance(num_heads, int)
                                      or num_heads < 1):
            raise ConfigError(f"num_heads must be a positive integer, got {num_heads!r}")
        _positive_number("fps", s.get("fps"), optional=True)
        folder_fps = s.get("folder_fps", DEFAULT_FOLDER_FPS)
        _positive_number("folder_fps", folder_fps, optional=False)
        batch = s.get("batch_size")
        if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
            raise ConfigError(f"batch_size must be a positive integer, got {batch!r}")
        backbone = s.get("backbone")
        if backbone is not None and not isinstance(backbone, str):
            raise ConfigError(f"backbone must be a backbone name, got {backbone!r}")
        preset = _check_preset_fits(s, overrides)
        pca, grid_from = _check_audio(s, preset)
        if preset.jpeg_roundtrip != "none" and s.get("decoder", "pyav") == "torchcodec":
            raise ConfigError(f"preset {preset.name} makes each frame go through a JPEG round trip "
                              "(jpeg_roundtrip), which the PyAV reader runs: use decoder='pyav'")
        given = [k for k in ("mean", "std") if k in overrides]
        if given and preset.scale != "imagenet":
            raise ConfigError(f"{' and '.join(given)} apply to scale 'imagenet' ((x / 255 - mean) / "
                              f"std); preset {preset.name} scales {preset.scale!r}: add "
                              "scale='imagenet' to use them")
        if random_weights and model is None and backbone is None:
            raise ConfigError("random weights need a model size (model=NAME); see `vadfeat models`")
        on_corrupt = s.get("on_corrupt", "fail")
        if on_corrupt not in _ON_CORRUPT:
            raise ConfigError(f"on_corrupt must be one of {', '.join(_ON_CORRUPT)}, got {on_corrupt!r}")
        frames_colour = s.get("frames_colour", "normal")
        if frames_colour not in _FRAMES_COLOUR:
            raise ConfigError(
                f"frames_colour must be one of {', '.join(_FRAMES_COLOUR)}, got {frames_colour!r}"
            )
        preprocess = check_preprocess(s.get("preprocess", "worker"), preset)
        # torchcodec must load and cannot skip corrupt packets: refused here, before any work.
        decoder = check_decoder(s.get("decoder", "pyav"), on_corrupt=on_corrupt)
        device = s.get("device", "auto")
        if device != "auto":
            _parse_device(device)
        dtype = s.get("dtype", "auto")
        if dtype != "auto":
            parse_dtype(dtype)
        layout = check_layout(s.get("layout", "flat"))
        shard_size, shard_mb = s.get("shard_size", DEFAULT_SHARD_SIZE), s.get("shard_mb", DEFAULT_SHARD_MB)
        sink = check_sink_settings(s.get("sink", "npy"), layout, shard_size, shard_mb)
        return cls(
            checkpoint=checkpoint, model=model, backbone=backbone, preset=preset,
            overrides=tuple(overrides.items()),
            random_weights=bool(random_weights), device=device, dtype=dtype,
            batch_size=None if batch is None else check_batch_size(batch), num_heads=num_heads,
            on_corrupt=on_corrupt,
            fps=s.get("fps"), frames_colour=frames_colour, folder_fps=folder_fps,
            quantize=s.get("quantize"), preprocess=preprocess,
            max_pixels=check_max_pixels(s.get("max_pixels", DEFAULT_MAX_PIXELS)),
            layout=layout, decoder=decoder,
            stream=check_stream(s.get("stream")), pca=pca, grid_from=grid_from,
            sink=sink, shard_size=shard_size, shard_mb=shard_mb,
        )

    # ------------------------------------------------------------------ derived values

    def replace(self, **changes: Any) -> ExtractConfig:
        """A copy with ``changes``, validated again."""
        return ExtractConfig.from_settings(self.settings(), **changes)

    def settings(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this config (:meth:`from_settings`)."""
        own = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "overrides"}
        return {**own, **dict(self.overrides)}

    @property
    def crops(self) -> int:
        return self.preset.crops

    def model_batch(self, input_kind: str) -> int:
        """Clips or images per forward pass for a backbone of ``input_kind``: ``batch_size``,
        or :data:`DEFAULT_BATCH_SIZE`'s when it is ``None``."""
        return self.batch_size if self.batch_size is not None else DEFAULT_BATCH_SIZE[input_kind]

    def snippets_per_batch(self, input_kind: str) -> int:
        """Snippets the model side groups into one batch: as many as :meth:`model_batch`
        holds, at least one (a frame backbone then splits it into passes of
        :meth:`model_batch` images)."""
        return max(1, self.model_batch(input_kind) // inputs_per_snippet(self.preset, input_kind))

    def input_kind(self) -> str:
        """``"clip"`` or ``"frame"``: what the model of these settings takes (from the
        registry, the checkpoint's header at most); ``"clip"`` when the model cannot be
        told (its loader says why, later)."""
        from vadfeat.backbones._registry import pick_backbone
        from vadfeat.errors import VadfeatError

        try:
            bb, _ = pick_backbone(checkpoint=self.checkpoint, model=self.model, backbone=self.backbone)
        except VadfeatError:
            return "clip"
        return bb.input_kind

    @property
    def override_dict(self) -> dict[str, Any]:
        return dict(self.overrides)

    def portable(self) -> ExtractConfig:
        """The same config with a checkpoint path that works from any folder (or machine)."""
        ckpt = self.checkpoint
        if ckpt is None or str(ckpt).startswith("hf://"):
            return self
        return dataclasses.replace(self, checkpoint=str(Path(ckpt).expanduser().absolute()))

    def identify(self) -> ModelIdentity:
        """The model's name, checkpoint hash and quantisation, read from the checkpoint file.

        The checkpoint is hashed and its architecture detected (``.pth`` files are
        memory-mapped, so the tensors are not read); no model is built.  Raises
        :class:`ConfigError` / :class:`~vadfeat.errors.CheckpointError`.
        """
        from vadfeat.backbones._registry import resolve_model

        found = resolve_model(self.checkpoint, model=self.model, backbone=self.backbone,
                              num_heads=self.num_heads)
        check_fit(self.preset, found.spec, backbone=found.backbone)
        return ModelIdentity(found.name, found.checkpoint_sha256, found.checkpoint_sha256 is None,
                             self.quantize or found.quantize)

    def fingerprint(self, identity: ModelIdentity, device_type: str,
                    layout: str | None = None) -> dict[str, Any]:
        """The fingerprint of this config's outputs made by ``identity`` on ``device_type``.

        ``dtype`` ``auto`` is resolved for ``device_type``; ``layout`` defaults to the
        config's.  The same dict whether ``identity`` was read from the checkpoint file
        (before any model exists) or from the loaded model.
        """
        return settings_fingerprint(
            preset=self.preset, model=identity.name, checkpoint_sha256=identity.checkpoint_sha256,
            random_weights=identity.random_weights,
            dtype=resolve_dtype(self.dtype, torch.device(device_type)), fps=self.fps,
            frames_colour=self.frames_colour, on_corrupt=self.on_corrupt,
            layout=layout if layout is not None else self.layout, quantize=identity.quantize,
            preprocess=self.preprocess, folder_fps=self.folder_fps, num_heads=self.num_heads,
            decoder=self.decoder, stream=self.stream,
            pca=None if self.pca is None else {"sha256": _file_sha256(self.pca), "quantize": PCA_QUANTIZE},
            grid_from=None if self.grid_from is None else {"sha256": grid_source_digest(self.grid_from)},
        )


__all__ = ["CONTENT_SETTINGS", "DEFAULT_BATCH_SIZE", "RUN_SETTINGS", "ExtractConfig", "ModelIdentity",
           "check_fit", "check_preprocess", "check_sink_settings", "inputs_per_snippet",
           "resolve_device", "resolve_dtype", "settings_fingerprint"]
