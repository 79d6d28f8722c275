"""The backbone registry: every feature family vadfeat can run, and how a file or name finds one.

A *backbone* is a model family (VideoMAE V2, CLIP, ...).  It registers one
:class:`Backbone` object that says:

- its **architectures** (sizes), each an object with at least ``name``,
  ``patch_size``, ``tubelet_size`` (1 for image models), ``img_size`` and
  ``to_dict()``, plus extra **aliases** (old or short names);
- its **pretrained configurations** (:class:`PretrainedCfg`: where released
  weights come from, their sha256 when known, and the preprocessing preset that
  travels with them, as timm's ``PretrainedCfg`` and open_clip's preprocess
  configs do);
- its **feature heads** (:class:`FeatureHead`) and their shapes;
- the **stream** it consumes (:mod:`vadfeat.backbones.streams`): video clips
  ``[B, 3, T, H, W]``, video frames ``[B, 3, H, W]`` or audio samples at a rate
  (``input_kind``, ``"clip"`` or ``"frame"``, is derived from it).  Frame models are
  wrapped so that the pipeline always calls ``model(x)`` on ``[N, 3, T, H, W]`` clips and
  gets one feature per snippet (the wrapper reduces the ``T`` frame features: see
  :class:`~vadfeat.backbones.frames.SnippetOfFrames`);
- its **presets** (``vadfeat.backbones.<family>.presets``, gathered by
  :mod:`vadfeat.pipeline.presets`) and its **capabilities** as data (``default``,
  ``records_bare_names``, ``supports_quantize``, ``hub_prefixes``, ``reads_unsafe_pickle``),
  never a test of its name elsewhere;
- checkpoint **detection** (:meth:`Backbone.sniff`, from key names, a folder's
  ``config.json`` or the container; a :class:`Sniffed` verdict that says why, either way)
  and **loading**: :meth:`Backbone.load_model` is one template (resolve, read, map keys,
  load strictly, ready), the families supplying hooks only, as timm's
  ``build_model_with_cfg`` does.

Names are namespaced, ``<backbone>/<architecture>`` (``videomae_v2/vit_g_14``,
``clip/vit_b_16``); a bare architecture name or alias is accepted when exactly one
backbone has it, so the names outputs recorded before backbones existed
(``vit_giant_patch14_224``) still resolve and those outputs still resume.

Third-party backbones register through the ``vadfeat.backbones`` entry-point
group: the entry point names a :class:`Backbone` instance, class or factory,
loaded the first time the registry is consulted (see docs/DESIGN.md, "How to add
a backbone").
"""

from __future__ import annotations

import importlib
import json
import logging
import zipfile
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from vadfeat._types import InputKind
from vadfeat.backbones.streams import Stream, VideoClips, VideoFrames, stream_of_input_kind
from vadfeat.errors import CheckpointError, ConfigError, UnknownModelError, UnrecognizedCheckpointError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "vadfeat.backbones"

#: Most tokens one clip may give a transformer whose spec does not state its own limit
#: (``token_limit``): attention memory grows with their square.  2**16 is above what any
#: VideoMAE V2 model was built for (ViT-g/14 at 16x224: 2,048).
MAX_TOKENS = 2**16


def token_limit(spec: Any) -> int | None:
    """Most tokens per clip for ``spec``: its ``token_limit`` (an int; ``False``: none, as for
    convolutional networks; ``True`` or absent: :data:`MAX_TOKENS`)."""
    limit = getattr(spec, "token_limit", True)
    if limit is True:
        return MAX_TOKENS
    if limit is False or limit is None:
        return None
    return int(limit)


@dataclass(frozen=True)
class PretrainedCfg:
    """One released set of weights: what it is, where it comes from, how to feed it.

    ``preset`` names the vadfeat preset whose pixels match the weights' training
    (the preprocessing that travels with the weights); ``sha256`` is the file's
    hash when the publisher states it (OpenAI's CLIP URLs embed it), else ``None``.
    """

    name: str
    arch: str
    source: str
    file: str
    preset: str
    sha256: str | None = None
    notes: str = ""


@dataclass(frozen=True)
class FeatureHead:
    """One feature a backbone can output; ``shape`` maps an architecture to the per-clip shape."""

    name: str
    description: str
    shape: Callable[[Any], tuple[int, ...]]


@dataclass(frozen=True)
class Sniffed:
    """A backbone's answer to "is this checkpoint yours?" (:meth:`Backbone.sniff`).

    ``ours``: it claims the file; ``why``: in words, what it recognised, or what it looked for
    and did not find (``"no patch_embed.proj.weight key"``).  When no backbone claims a file,
    the error lists every backbone's ``why``.
    """

    ours: bool
    why: str

    @classmethod
    def yes(cls, why: str) -> Sniffed:
        return cls(True, why)

    @classmethod
    def no(cls, why: str) -> Sniffed:
        return cls(False, why)


@runtime_checkable
class ArchSpec(Protocol):
    """What the pipeline needs of any architecture: a name and its fields for sidecars.

    Architectures of image streams are :class:`ImageArchSpec` (patch and image sizes, which the
    pipeline checks clips against); an audio backbone's need not have them.
    """

    # Read-only (properties), so that frozen dataclasses satisfy the protocol.
    @property
    def name(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


@runtime_checkable
class ImageArchSpec(ArchSpec, Protocol):
    """An architecture of an image stream (VideoMAE's ModelSpec, CLIP's ClipVisionSpec ...):
    clips must be whole ``tubelet_size`` frames (1 for image models) and ``patch_size`` px.

    Optional attributes the pipeline reads: ``fixed_size`` (inputs must be ``img_size``
    square), ``token_limit`` (see :func:`token_limit`), ``min_frames``."""

    @property
    def patch_size(self) -> int: ...
    @property
    def tubelet_size(self) -> int: ...
    @property
    def img_size(self) -> int: ...


class Backbone:
    """Base class of a backbone plug-in; subclass it and :func:`register_backbone` an instance.

    Class attributes to set: ``name`` (namespace, ``[a-z0-9_]+``), ``title`` (one line
    with the paper), ``stream`` (what it consumes, :mod:`vadfeat.backbones.streams`; a plug-in
    written before streams may set ``input_kind`` instead), ``default_preset``, ``presets``
    (its own :class:`~vadfeat.backbones.recipes.Preset` objects by name), ``features`` (the
    first is the default), ``checkpoint_formats`` (what :meth:`sniff` recognises, for
    ``--help`` and ``checkpoint inspect``).

    Capabilities, all off by default (data, so that no code tests a backbone's name):
    ``default`` (the backbone a run uses when nothing names one; exactly one built-in sets
    it), ``records_bare_names`` (sidecars record ``arch``, not ``backbone/arch``: names
    recorded before backbones existed), ``supports_quantize`` (``quantize="int8"``),
    ``hub_prefixes`` (checkpoint URIs its reader fetches, ``("hf://",)``),
    ``reads_unsafe_pickle`` (``--unsafe-allow-pickle``: :meth:`read_checkpoint` and
    :meth:`inspect_checkpoint` take ``allow_pickle=``), ``can_compress`` (``vadfeat
    compress`` prunes and quantizes its checkpoints).

    Loading is the template :meth:`load_model`; a family writes its hooks
    (:meth:`read_weights`, :meth:`build_network`, :meth:`init_random`, :meth:`map_state`,
    and where needed :meth:`spec_for`, :meth:`check_weights`, :meth:`load_weights`,
    :meth:`wrap`, :meth:`finish`).
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    stream: ClassVar[Stream] = VideoClips()
    #: ``"clip"`` or ``"frame"``: derived from :attr:`stream` (kept for the callers that
    #: size batches by it).
    input_kind: ClassVar[InputKind] = "clip"
    default_preset: ClassVar[str] = ""
    presets: ClassVar[Mapping[str, Any]] = {}
    features: ClassVar[tuple[FeatureHead, ...]] = ()
    checkpoint_formats: ClassVar[tuple[str, ...]] = ()
    default: ClassVar[bool] = False
    records_bare_names: ClassVar[bool] = False
    supports_quantize: ClassVar[bool] = False
    hub_prefixes: ClassVar[tuple[str, ...]] = ()
    reads_unsafe_pickle: ClassVar[bool] = False
    can_compress: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "stream" in cls.__dict__:
            cls.input_kind = cls.stream.input_kind
        elif "input_kind" in cls.__dict__:  # a plug-in written before streams
            cls.stream = stream_of_input_kind(cls.input_kind)

    # ----------------------------------------------------------------- description
    def architectures(self) -> Mapping[str, ArchSpec]:
        """Architecture name -> spec, in listing order."""
        raise NotImplementedError

    def aliases(self) -> Mapping[str, str]:
        """Extra names (short or historical) -> architecture name."""
        return {}

    def pretrained(self) -> Sequence[PretrainedCfg]:
        return ()

    @property
    def default_feature(self) -> str:
        return self.features[0].name

    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    def check_feature(self, feature: str) -> str:
        """``feature`` if this backbone offers it, else :class:`ConfigError` naming the ones it has."""
        if feature not in self.feature_names():
            raise ConfigError(
                f"backbone {self.name} has no feature {feature!r}; it offers "
                f"{', '.join(self.feature_names())} (--pooling)"
            )
        return feature

    def feature_shape(self, spec: ArchSpec, feature: str) -> tuple[int, ...]:
        """Per-clip feature shape (no batch, no crop axis) of ``feature`` for ``spec``."""
        head = {f.name: f for f in self.features}[self.check_feature(feature)]
        return head.shape(spec)

    def describe(self, spec: ArchSpec) -> dict[str, Any]:
        """Columns for ``vadfeat models`` (width, depth, heads, params ...)."""
        return spec.to_dict()

    def describe_input(self, preset: Any) -> str | None:
        """What one of this backbone's presets feeds the model, for ``--preset``'s help, when
        its sampling and pixel fields do not say it (an audio preset's grid); ``None``: the
        help describes the snippets and pixels."""
        return None

    # ----------------------------------------------------------------- files
    def sniff(self, path: Path, keys: Collection[str] | None,
              config: Mapping[str, Any] | None) -> Sniffed | bool:
        """Is this checkpoint one of ours, and why (or why not)?  ``keys``: state-dict key names
        when readable without running code (else ``None``); ``config``: a folder's
        ``config.json``.  Return :class:`Sniffed` (``Sniffed.no("no conv1.weight key")``): a
        file no backbone claims is refused with every backbone's reason.  A plain ``bool``
        (plug-ins written before :class:`Sniffed`) is accepted; its refusal says no reason.
        The keys of the ``state_dict()`` of the model :meth:`load_model` returns, whatever
        wrapper prefix it puts on them, must be claimed (vadfeat's own modules load back)."""
        raise NotImplementedError

    def read_checkpoint(self, source: str | Path) -> tuple[dict[str, Any], Any]:
        """``(state dict under the model's own names, info)`` for ``checkpoint convert``; the
        info object has ``spec``, ``model_name``, ``format``, ``sha256`` and ``to_dict()``."""
        raise NotImplementedError

    def inspect_checkpoint(self, source: str | Path, *, num_heads: int | None = None) -> Any:
        """What ``vadfeat checkpoint inspect`` reports: the info of :meth:`read_checkpoint`."""
        return self.read_checkpoint(source)[1]

    def check_checkpoint_arch(self, arch: str | None, info: Any) -> None:
        """:class:`CheckpointError` when ``--model`` asked for ``arch`` and the checkpoint
        (``info``) holds another size; nothing to check by default."""

    # ----------------------------------------------------------------- loading (template)
    def load_model(
        self,
        checkpoint: str | Path | None,
        *,
        arch: str | None,
        feature: str,
        device: Any,
        dtype: Any = None,
        num_heads: int | None = None,
        seed: int = 0,
        quantize: str | None = None,
        frame_reduce: str = "mean",
    ) -> Any:
        """A module in eval mode mapping the stream's batches (video: ``[N, 3, T, H, W]`` float
        clips) to ``[N, *feature_shape]``.

        The one template every backbone runs: **resolve** the architecture (``arch``, or the
        checkpoint's; random weights need one), **read** the checkpoint
        (:meth:`read_weights`), check the weights against the feature (:meth:`check_weights`),
        build the network (:meth:`build_network`), then either :meth:`init_random` with
        ``seed`` or **map** the state dict's keys (:meth:`map_state`) and **load it strictly**
        (:meth:`load_weights`); :meth:`wrap` it (frame streams: one feature per snippet,
        ``frame_reduce``), attach the attributes below, make it **ready** (eval, no grad,
        ``device``, ``dtype``) and :meth:`finish` it (``quantize``).

        The model carries ``spec``, ``feature_shape`` (per clip), ``checkpoint`` (the reader's
        info object or ``None``), ``random_weights``, ``quantize``, ``pooling`` (the feature
        name) and ``backbone`` (this object's ``name``).

        Raises :class:`ConfigError` (unknown feature, ``quantize`` where not supported, no
        size for random weights) and :class:`CheckpointError` (what the hooks find wrong).
        """
        from vadfeat.backbones.loading import ready

        self.check_feature(feature)
        if quantize is not None and not self.supports_quantize:
            able = [b.name for b in list_backbones() if b.supports_quantize]
            raise ConfigError(f"quantize={quantize!r} is implemented for {', '.join(able) or 'no backbone'} "
                              f"only, not {self.name}")
        if isinstance(self.stream, VideoFrames):
            from vadfeat.backbones.frames import check_frame_reduce

            check_frame_reduce(frame_reduce)
        info: Any = None
        state: Mapping[str, Any] | None = None
        if checkpoint is not None:
            state, info = self.read_weights(checkpoint, num_heads=num_heads)
        elif arch is None:
            arch = self.default_arch()
            if arch is None:
                raise ConfigError("random weights need a model size (model=NAME); see `vadfeat models`")
        spec = self.spec_for(arch, info)
        self.check_weights(spec, info, feature)
        net = self.build_network(spec, feature)
        if state is None:
            self.init_random(net, seed=seed)
            log.warning("model %s has RANDOM weights: features are for testing only", self.record_name(spec))
        else:
            self.load_weights(net, self.map_state(state, net, feature=feature, info=info))
        model = self.wrap(net, spec=spec, feature=feature, info=info, random_weights=state is None,
                          frame_reduce=frame_reduce)
        _attach(model, spec=spec, feature_shape=self.feature_shape(spec, feature), checkpoint=info,
                random_weights=state is None, quantize=None, pooling=feature, backbone=self.name)
        model = ready(model, device=device, dtype=dtype)
        return self.finish(model, quantize=quantize, info=info, device=device)

    def read_weights(self, checkpoint: str | Path, *, num_heads: int | None = None,
                     allow_pickle: bool = False) -> tuple[Mapping[str, Any], Any]:
        """Hook: ``(state dict, info)`` of ``checkpoint`` (info has ``spec``, ``model_name``,
        ``format``, ``sha256``, ``to_dict()``); :meth:`read_checkpoint` by default.
        ``allow_pickle`` (``checkpoint convert --unsafe-allow-pickle``) is a
        :class:`ConfigError` unless the backbone :attr:`reads_unsafe_pickle`."""
        if allow_pickle and not self.reads_unsafe_pickle:
            able = ", ".join(b.name for b in list_backbones() if b.reads_unsafe_pickle)
            raise ConfigError(f"--unsafe-allow-pickle is for {able} .pth files, not {self.name}")
        return self.read_checkpoint(checkpoint)

    def spec_for(self, arch: str | None, info: Any) -> Any:
        """Hook: the architecture to build: the checkpoint's (``info.spec``, checked against
        ``arch`` by :meth:`check_checkpoint_arch`) or, for random weights, ``arch``'s."""
        if info is None:
            assert arch is not None  # load_model resolved it
            return self.architectures()[arch]
        self.check_checkpoint_arch(arch, info)
        return info.spec

    def check_weights(self, spec: Any, info: Any, feature: str) -> None:
        """Hook: :class:`CheckpointError` when the weights cannot give ``feature`` (a head the
        file lacks); nothing by default."""

    def build_network(self, spec: Any, feature: str) -> Any:
        """Hook: the network of ``spec`` for ``feature``, weights uninitialised or default."""
        raise NotImplementedError(f"backbone {self.name} does not build networks (build_network)")

    def init_random(self, net: Any, *, seed: int) -> None:
        """Hook: deterministic random weights from ``seed`` (every parameter and buffer)."""
        raise NotImplementedError(f"backbone {self.name} has no random weights (init_random)")

    def map_state(self, state: Mapping[str, Any], net: Any, *, feature: str, info: Any) -> Mapping[str, Any]:
        """Hook: the state dict under ``net``'s own names, keys it does not use filtered out and
        checked (:class:`CheckpointError` naming missing or unexpected keys); unchanged by default."""
        return state

    def load_weights(self, net: Any, state: Mapping[str, Any]) -> None:
        """Hook: load ``state`` into ``net``, every key consumed (strict by default)."""
        net.load_state_dict(dict(state), strict=True)

    def wrap(self, net: Any, *, spec: Any, feature: str, info: Any, random_weights: bool,
             frame_reduce: str = "mean") -> Any:
        """Hook: the module the pipeline calls.  Frame streams: ``net`` maps images to
        features and is wrapped as a clip model (:class:`~vadfeat.backbones.frames.SnippetOfFrames`,
        ``frame_reduce``); otherwise ``net`` itself."""
        if isinstance(self.stream, VideoFrames):
            from vadfeat.backbones.frames import SnippetOfFrames

            return SnippetOfFrames(net, reduce=frame_reduce)
        return net

    def finish(self, model: Any, *, quantize: str | None, info: Any, device: Any) -> Any:
        """Hook: the last step, after the model is ready (quantization); ``model`` by default."""
        return model

    def resolve(self, checkpoint: str | Path | None, *, arch: str | None,
                num_heads: int | None = None) -> tuple[ArchSpec, str | None, str | None]:
        """``(spec, checkpoint sha256, quantize recorded in the file)`` without building the model.

        Reads the checkpoint's header and hash (tensors memory-mapped where the format
        allows) and checks ``arch`` against it: the run's fingerprint is computed from
        this before any model is loaded.  The default reads the checkpoint with
        :meth:`inspect_checkpoint` and checks it with :meth:`check_checkpoint_arch`.
        """
        if checkpoint is None:
            if arch is None:
                raise ConfigError("random weights need a model size (model=NAME); see `vadfeat models`")
            return self.architectures()[arch], None, None
        info = self.inspect_checkpoint(checkpoint, num_heads=num_heads)
        self.check_checkpoint_arch(arch, info)
        return info.spec, info.sha256, None

    def peek_geometry(self, checkpoint: str | Path) -> tuple[int, int] | None:
        """``(tubelet, patch)`` of ``checkpoint`` from its header alone, for checking settings
        before any weights load when no size is named; ``None`` (the default): not seen, the
        check waits for the loaded model.  Never raises."""
        return None

    def default_preset_for(self, arch: str | None, checkpoint: str | Path | None = None) -> str:
        """The preset that goes with ``arch`` (or with the architecture in ``checkpoint``, read
        from its key names only: :meth:`arch_of_checkpoint`): the preset of the released
        weights of that size (:class:`PretrainedCfg`, the one link between weights and their
        preset; :meth:`released_arch` for a size without weights), else :attr:`default_preset`."""
        if arch is None and checkpoint is not None:
            arch = self.arch_of_checkpoint(checkpoint)
        released = self.released_arch(arch) if arch is not None else None
        for cfg in self.pretrained():
            if cfg.arch == released:
                return cfg.preset
        return self.default_preset

    def arch_of_checkpoint(self, checkpoint: str | Path) -> str | None:
        """Hook: the architecture a checkpoint holds, from its key names alone (no tensors
        read), when that decides the preset; ``None`` (the default): not told."""
        return None

    def released_arch(self, arch: str) -> str:
        """Hook: the size whose released weights ``arch`` stands for (a test size stands for
        the released size of its family); ``arch`` itself by default."""
        return arch

    def default_arch(self) -> str | None:
        """The size random weights get when no model is named (``None``: a name is required)."""
        return None

    def dry_run_sizes(self) -> tuple[str, ...]:
        """Registered sizes without released weights, small enough for a dry run with random
        weights on a CPU (``vadfeat models`` and ``--model``'s help name them)."""
        return ()

    def qualified(self, arch: str) -> str:
        return f"{self.name}/{arch}"

    def record_name(self, spec: ArchSpec) -> str:
        """The model name sidecars and fingerprints record: bare (``vit_giant_patch14_224``) for
        a backbone that :attr:`records_bare_names` (outputs written before backbones existed
        resume), qualified otherwise (``clip/vit_b_16``)."""
        return spec.name if self.records_bare_names else self.qualified(spec.name)

    def inspect_rows(self, info: Any, spec_text: str) -> list[tuple[str, str]]:
        """``checkpoint inspect``'s lines for ``info``, as ``(label, text)``, after ``path`` and
        ``backbone``; ``spec_text`` is the model line's text."""
        d = info.to_dict()
        spec = info.spec
        rows = [("format", str(d["format"])), ("model", spec_text),
                ("features", ", ".join(f"{f} {self.feature_shape(spec, f)}" for f in self.feature_names()))]
        if "num_params" in d:
            rows.append(("parameters", f"{d['num_params']:,}"))
        rows.append(("sha256", str(d["sha256"])))
        rows.extend(("note", str(n)) for n in d.get("notes", ()))
        return rows

    def inspect_json(self, info: Any) -> dict[str, Any]:
        """``checkpoint inspect --json``'s object for ``info``."""
        return {"backbone": self.name, **info.to_dict()}


def _attach(model: Any, **attrs: Any) -> None:
    """Set the attributes the pipeline reads on ``model``, except those its class computes
    (a property such as VideoMAE's ``spec``)."""
    for key, value in attrs.items():
        if isinstance(getattr(type(model), key, None), property):
            continue
        setattr(model, key, value)


# --------------------------------------------------------------------------- the registry

_BACKBONES: dict[str, Backbone] = {}
#: The built-in backbones' modules, in listing order (each registers one backbone on import).
_BUILTIN_MODULES = (
    "vadfeat.backbones.videomae.backbone",
    "vadfeat.backbones.clip.backbone",
    "vadfeat.backbones.i3d.backbone",
    "vadfeat.backbones.vggish.backbone",
)
_entry_points_loaded = False


def register_backbone(backbone: Backbone) -> Backbone:
    """Add a backbone; :class:`ValueError` if its name is taken or malformed."""
    name = backbone.name
    if not name or not name.replace("_", "").isalnum() or name != name.lower():
        raise ValueError(f"backbone name {name!r} must be lower-case letters, digits and '_'")
    if name in _BACKBONES and _BACKBONES[name] is not backbone:
        raise ValueError(f"backbone {name!r} registered twice")
    _BACKBONES[name] = backbone
    return backbone


def _builtins() -> None:
    # Imported here, not at module import, so that the registry has no import cycle
    # with the backbones that register into it.
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            if isinstance(obj, type) or (callable(obj) and not isinstance(obj, Backbone)):
                obj = obj()
            if not isinstance(obj, Backbone):
                raise TypeError(f"{ep.value} gave {type(obj).__name__}, not a vadfeat Backbone")
            register_backbone(obj)
        except Exception as exc:  # noqa: BLE001 - a broken plug-in must not break vadfeat
            log.warning("backbone plug-in %r (%s) not loaded: %s", ep.name, ep.value, exc)


def list_backbones() -> list[Backbone]:
    """Every registered backbone: the built-in ones first, then plug-ins."""
    _builtins()
    _load_entry_points()
    rank = {m: i for i, m in enumerate(_BUILTIN_MODULES)}
    builtin = sorted((b for b in _BACKBONES.values() if type(b).__module__ in rank),
                     key=lambda b: rank[type(b).__module__])
    return builtin + [b for b in _BACKBONES.values() if type(b).__module__ not in rank]


def default_backbone() -> Backbone:
    """The backbone a run uses when nothing names one (:attr:`Backbone.default`); a plug-in
    cannot take the place of a built-in one.  :class:`RuntimeError` unless exactly one claims it."""
    defaults = [b for b in list_backbones() if b.default]
    if len(defaults) != 1:
        raise RuntimeError(f"exactly one backbone must be the default; found {[b.name for b in defaults]}")
    return defaults[0]


def get_backbone(name: str) -> Backbone:
    """The backbone called ``name``; :class:`UnknownModelError` listing the known ones."""
    backbones = {b.name: b for b in list_backbones()}
    try:
        return backbones[name]
    except KeyError:
        raise UnknownModelError(
            f"unknown backbone {name!r}; known backbones: {', '.join(backbones)}"
        ) from None


def resolve_model_name(name: str, *, backbone: str | None = None) -> tuple[Backbone, str]:
    """``(backbone, architecture name)`` for ``backbone/arch``, an alias, or a bare name.

    A bare name must belong to one backbone only (or to ``backbone`` when given);
    otherwise :class:`UnknownModelError` names the candidates as qualified names.
    """
    ns, _, arch = name.partition("/")
    if arch and ns in {b.name for b in list_backbones()}:
        if backbone is not None and ns != backbone:
            raise ConfigError(f"model {name!r} is not a {backbone} model")
        bb = get_backbone(ns)
        return bb, _arch_of(bb, arch, shown=name)
    candidates = [b for b in list_backbones() if backbone is None or b.name == backbone]
    hits = [(b, a) for b in candidates if (a := _arch_or_none(b, name)) is not None]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        both = ", ".join(b.qualified(a) for b, a in hits)
        raise UnknownModelError(f"model name {name!r} is ambiguous: say which one ({both})")
    known = ", ".join(b.qualified(a) for b in candidates for a in b.architectures())
    raise UnknownModelError(f"unknown model {name!r}; known models: {known} (see `vadfeat models`)")


def _arch_or_none(bb: Backbone, name: str) -> str | None:
    archs = bb.architectures()
    if name in archs:
        return name
    alias = bb.aliases().get(name)
    return alias if alias in archs else None


def _arch_of(bb: Backbone, name: str, *, shown: str) -> str:
    arch = _arch_or_none(bb, name)
    if arch is None:
        known = ", ".join(bb.qualified(a) for a in bb.architectures())
        raise UnknownModelError(f"unknown model {shown!r}; {bb.name} has: {known}")
    return arch


@dataclass(frozen=True)
class ResolvedModel:
    """What a run's fingerprint needs of its model, found without building it."""

    backbone: Backbone
    spec: ArchSpec
    name: str
    checkpoint_sha256: str | None
    quantize: str | None


def resolve_model(checkpoint: str | Path | None, *, model: str | None = None, backbone: str | None = None,
                  num_heads: int | None = None) -> ResolvedModel:
    """The backbone, architecture and checkpoint hash a run will use (see :func:`pick_backbone`).

    Raises :class:`ConfigError` (unknown or ambiguous names, no model for random weights)
    and :class:`CheckpointError` (unreadable file, a size that disagrees with ``model``).
    """
    bb, arch = pick_backbone(checkpoint=checkpoint, model=model, backbone=backbone)
    if checkpoint is None and arch is None:
        arch = bb.default_arch()
        if arch is None:
            raise ConfigError("random weights need a model size (model=NAME); see `vadfeat models`")
    spec, sha, quantize = bb.resolve(checkpoint, arch=arch, num_heads=num_heads)
    return ResolvedModel(bb, spec, bb.record_name(spec), sha, quantize)


def canonical_model_name(name: str | None) -> str | None:
    """The name a fingerprint compares: :meth:`Backbone.record_name`'s (bare names of a
    backbone that :attr:`~Backbone.records_bare_names` stay as they were recorded: outputs
    written before backbones existed resume; other names are qualified).  Unknown names
    (custom sizes) are returned unchanged."""
    if name is None:
        return None
    try:
        bb, arch = resolve_model_name(name)
    except ConfigError:
        return name
    return arch if bb.records_bare_names else bb.qualified(arch)


# --------------------------------------------------------------------------- detection


def peek_checkpoint(path: Path) -> tuple[Collection[str] | None, dict[str, Any] | None]:
    """State-dict key names and a folder's ``config.json``, without loading tensors or running code.

    Keys come from a safetensors header, or from ``torch.load(weights_only=True,
    mmap=True)`` of a zip checkpoint (tensors stay on disk); ``None`` when neither
    reads (a TorchScript archive, a legacy pickle): the backbones then decide from
    the container itself.
    """
    config: dict[str, Any] | None = None
    if path.is_dir():
        cfg = path / "config.json"
        if cfg.is_file():
            try:
                loaded = json.loads(cfg.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise CheckpointError(f"{cfg}: unreadable config.json ({exc})") from exc
            # Not an object: detect by the weights' keys; the backbone's reader names the problem.
            config = loaded if isinstance(loaded, dict) else None
        weights = [p for p in sorted(path.iterdir()) if p.suffix in (".safetensors", ".bin", ".pth", ".pt")]
        if not weights:
            return None, config
        path = weights[0]
    if path.suffix == ".safetensors":
        try:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                return set(f.keys()), config
        except Exception:  # noqa: BLE001 - unreadable here; the loader reports why
            return None, config
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            if any(n.endswith("/constants.pkl") or "/code/" in n for n in zf.namelist()):
                return None, config  # TorchScript: never unpickled here
    try:
        import torch

        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - legacy or hostile pickles: the loader reports why
        return None, config
    return _flat_keys(obj), config


_SHOW_KEYS = 6  # key names quoted in the error for a file no backbone claims


def _flat_keys(obj: object, prefix: str = "", depth: int = 0) -> set[str]:
    keys: set[str] = set()
    if isinstance(obj, Mapping) and depth < 3:
        for k, v in obj.items():
            name = f"{prefix}{k}"
            if isinstance(v, Mapping):
                keys |= _flat_keys(v, name + ".", depth + 1)
            else:
                keys.add(name)
    return keys


def _sniff(bb: Backbone, path: Path, keys: Collection[str] | None,
           config: Mapping[str, Any] | None) -> Sniffed:
    verdict = bb.sniff(path, keys, config)
    if isinstance(verdict, Sniffed):
        return verdict
    return Sniffed(bool(verdict), "its sniff() gives no reason")


def detect_backbone(checkpoint: str | Path) -> Backbone:
    """The backbone whose checkpoint this is.

    :class:`CheckpointError` for a missing path or a file two backbones claim;
    :class:`~vadfeat.errors.UnrecognizedCheckpointError` (a :class:`ConfigError` and a
    :class:`CheckpointError`, exit 2) naming the file, every registered backbone and why
    each declined, for a file whose key names no backbone claims.  A file whose key names
    cannot be read without running code (a legacy pickle, a damaged or empty file), or that
    has none (a bare tensor), goes to the default backbone's loader (VideoMAE V2's), whose
    error says what it holds (and whose ``--unsafe-allow-pickle`` converts a trusted legacy
    file).  A URI (``hf://...``) goes to the backbone whose :attr:`~Backbone.hub_prefixes`
    name its scheme; not fetched here: the loader fetches once.
    """
    hub = [b for b in list_backbones() if any(str(checkpoint).startswith(p) for p in b.hub_prefixes)]
    if hub:
        return hub[0]
    path = Path(checkpoint).expanduser()
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    keys, config = peek_checkpoint(path)
    verdicts = [(b, _sniff(b, path, keys, config)) for b in list_backbones()]
    claims = [b for b, v in verdicts if v.ours]
    if len(claims) == 1:
        return claims[0]
    if not claims:
        if not keys:
            # Unreadable without unpickling, or no named entries (a bare tensor, an empty dict):
            # the default loader's own, detailed error says what the file holds.
            return default_backbone()
        shown = sorted(keys)
        found = ", ".join(shown[:_SHOW_KEYS])
        if len(shown) > _SHOW_KEYS:
            found += f" ... {len(shown)} in all"
        declined = "; ".join(f"not {b.name}: {v.why}" for b, v in verdicts)
        raise UnrecognizedCheckpointError(
            f"{path}: no backbone recognises this checkpoint (keys: {found or 'none'}): {declined}"
        )
    raise CheckpointError(
        f"{path}: looks like a checkpoint of several backbones ({', '.join(b.name for b in claims)}); "
        "say which with --backbone"
    )


def pick_backbone(
    *, checkpoint: str | Path | None = None, model: str | None = None, backbone: str | None = None
) -> tuple[Backbone, str | None]:
    """Which backbone runs, and which architecture was asked for (``None``: the checkpoint's).

    Order: an explicit ``backbone``; the namespace of ``model``; the checkpoint's
    contents; a bare ``model`` name; the :func:`default_backbone`.  A ``model`` of one
    backbone with a checkpoint of another is a :class:`CheckpointError`.
    """
    bb: Backbone | None = get_backbone(backbone) if backbone is not None else None
    arch: str | None = None
    if model is not None:
        mb, arch = resolve_model_name(model, backbone=backbone)
        bb = mb
    if checkpoint is not None:
        found = detect_backbone(checkpoint)
        if bb is not None and found is not bb:
            raise CheckpointError(
                f"{checkpoint} is a {found.name} checkpoint, but the model asked for is "
                f"{bb.qualified(arch) if arch else bb.name}"
            )
        bb = found
    if bb is None:
        bb = default_backbone()
    return bb, arch


__all__ = [
    "ENTRY_POINT_GROUP",
    "MAX_TOKENS",
    "ArchSpec",
    "Backbone",
    "FeatureHead",
    "ImageArchSpec",
    "InputKind",
    "PretrainedCfg",
    "ResolvedModel",
    "Sniffed",
    "canonical_model_name",
    "default_backbone",
    "detect_backbone",
    "get_backbone",
    "list_backbones",
    "peek_checkpoint",
    "pick_backbone",
    "register_backbone",
    "resolve_model",
    "resolve_model_name",
    "token_limit",
]
