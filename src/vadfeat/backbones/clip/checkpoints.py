"""Reading CLIP image-encoder weights from the files users hold, into OpenAI's layout.

Every format ends as a visual state dict with OpenAI's names without the ``visual.``
prefix (``conv1.weight``, ``transformer.resblocks.0.attn.in_proj_weight``, ``proj``...),
float32 tensors, that :class:`~vadfeat.backbones.clip.model.ClipVisual` loads with
``strict=True``.  Formats (:data:`CLIP_FORMATS`):

- ``"openai-torchscript"``: OpenAI's released ``ViT-B-16.pt`` etc., TorchScript archives
  (a zip with ``<name>/data.pkl``, ``<name>/constants.pkl``, ``<name>/code/...``,
  ``<name>/data/<key>``).  Read without ``torch.jit.load`` and without running the
  archive's code: ``data.pkl`` is unpickled by :class:`_ScriptUnpickler`, whose
  ``find_class`` maps ``__torch__.*`` module classes to a stand-in that only records
  its attributes, allows the tensor rebuild function and storage types, and refuses
  every other global with :class:`CheckpointError` naming it.  Tensors come from the
  ``data/<key>`` records (the ``persistent_load`` ids ``("storage", type, key,
  location, numel)`` written by torch's TorchScript pickler,
  ``torch/csrc/jit/serialization/pickler.cpp``).  The released weights are float16
  and the archives name ``cuda:0`` as location; both are ignored/converted (note).
- ``"openai-state-dict"``: a ``torch.save`` state dict with OpenAI names
  (``visual.conv1.weight``...; text-tower keys ignored and counted in the notes), or
  a visual-only one without the prefix;  ``"openai-safetensors"``: the same in
  ``.safetensors``;
- ``"open_clip"``: open_clip training checkpoints (``{"state_dict": {"module.visual...``)
  or DDP-prefixed state dicts, as open_clip's ``load_state_dict`` unwraps them, and
  open_clip hub folders (``open_clip_model.safetensors`` /
  ``open_clip_pytorch_model.bin``).  open_clip's OpenAI-architecture ViTs use the same
  ``visual.*`` names.  Caveat (note): open_clip models not named ``-quickgelu`` were
  trained with ``nn.GELU``, which the weights do not record; this encoder uses QuickGELU.
- ``"transformers"``: a ``CLIPModel`` / ``CLIPVisionModelWithProjection`` folder
  (``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``), converted by
  :func:`transformers_to_openai`; ``"transformers-state-dict"``: such weights as a bare
  file without ``config.json`` (QuickGELU and ``heads = width // 64`` assumed, noted).

Rules: ``torch.load(..., weights_only=True)`` only; non-float tensors are refused;
float16/bfloat16 weights are converted to float32 (note); missing, unexpected or
misshapen visual keys are named in the :class:`CheckpointError` (first 8 and a count).
"""

from __future__ import annotations

import collections
import json
import logging
import pickle
import re
import sys
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from vadfeat.backbones._files import checkpoint_sha256, load_safetensors
from vadfeat.backbones.clip.model import ClipVisionSpec, ClipVisual, infer_spec
from vadfeat.backbones.clip.spec import CLIP_FORMATS  # re-exported: the names live there
from vadfeat.errors import CheckpointError

__all__ = [
    "CLIP_FORMATS",
    "ClipCheckpoint",
    "detect_clip",
    "load_clip_checkpoint",
    "read_torchscript_state_dict",
    "transformers_to_openai",
    "why_not_clip",
]

log = logging.getLogger(__name__)

_SHOW = 8  # keys named in an error message


@dataclass(frozen=True)
class ClipCheckpoint:
    """A CLIP image encoder's weights, read and checked.

    ``state_dict``: OpenAI names without ``visual.``, float32 CPU tensors, exactly the
    keys and shapes of ``ClipVisual(spec)``; ``format``: one of :data:`CLIP_FORMATS`;
    ``sha256``: hex digest of the file read (for a folder, of its weights file);
    ``notes``: what was ignored or converted, in words.
    """

    state_dict: dict[str, torch.Tensor]
    spec: ClipVisionSpec
    format: str
    sha256: str
    notes: tuple[str, ...]
    path: Path


# --------------------------------------------------------------------------- key layouts

_OPENAI_MARKERS = ("visual.conv1.weight", "visual.class_embedding", "visual.positional_embedding")
_HF_MARKERS = ("vision_model.embeddings.patch_embedding.weight", "vision_model.embeddings.class_embedding")
_BARE_MARKERS = ("conv1.weight", "class_embedding", "positional_embedding")


# frame_model.: the state_dict() of the model vadfeat builds (SnippetOfFrames around ClipVisual).
_WRAPPERS = ("state_dict.", "module.", "frame_model.")


def _strip(key: str) -> str:
    for prefix in _WRAPPERS:
        if key.startswith(prefix):
            key = key[len(prefix) :]
    return key


def detect_clip(keys: Iterable[str]) -> bool:
    """Whether state-dict key names look like a CLIP image encoder (any layout above).

    Cheap (names only): true when an OpenAI/open_clip marker (``visual.conv1.weight``,
    ``visual.class_embedding``...), a ``transformers`` marker
    (``vision_model.embeddings.patch_embedding.weight``...) is present, possibly under
    ``module.``, or all of ``conv1.weight``, ``class_embedding`` and
    ``positional_embedding`` (a visual-only OpenAI dict).  VideoMAE keys
    (``patch_embed.proj.weight``, ``blocks.N...``) never match.
    """
    names = {_strip(k) for k in keys}
    if any(m in names for m in _OPENAI_MARKERS + _HF_MARKERS):
        return True
    return all(m in names for m in _BARE_MARKERS)


def why_not_clip(keys: Iterable[str]) -> str:
    """Why key names are not a CLIP image encoder (:func:`detect_clip` false), in words."""
    names = {_strip(k) for k in keys}
    lacking = [m for m in _BARE_MARKERS if m not in names]
    return (f"no {_OPENAI_MARKERS[0]} (OpenAI, open_clip) or {_HF_MARKERS[0]} (transformers) key, and "
            f"not a visual-only state dict (lacks {', '.join(lacking)})")


_HF_LAYER = re.compile(r"^vision_model\.encoder\.layers\.(\d+)\.(.+)$")
_HF_BLOCK_NAMES = {
    "self_attn.out_proj.weight": "attn.out_proj.weight",
    "self_attn.out_proj.bias": "attn.out_proj.bias",
    "layer_norm1.weight": "ln_1.weight",
    "layer_norm1.bias": "ln_1.bias",
    "mlp.fc1.weight": "mlp.c_fc.weight",
    "mlp.fc1.bias": "mlp.c_fc.bias",
    "mlp.fc2.weight": "mlp.c_proj.weight",
    "mlp.fc2.bias": "mlp.c_proj.bias",
    "layer_norm2.weight": "ln_2.weight",
    "layer_norm2.bias": "ln_2.bias",
}
_HF_NAMES = {
    "vision_model.embeddings.patch_embedding.weight": "conv1.weight",
    "vision_model.embeddings.class_embedding": "class_embedding",
    "vision_model.embeddings.position_embedding.weight": "positional_embedding",
    "vision_model.pre_layrnorm.weight": "ln_pre.weight",  # (sic) transformers' spelling
    "vision_model.pre_layrnorm.bias": "ln_pre.bias",
    "vision_model.post_layernorm.weight": "ln_post.weight",
    "vision_model.post_layernorm.bias": "ln_post.bias",
}
_HF_IGNORED = ("vision_model.embeddings.position_ids",)  # an index buffer, not a weight


def transformers_to_openai(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a ``transformers`` CLIP state dict to OpenAI's visual layout (no ``visual.`` prefix).

    ``self_attn.{q,k,v}_proj.{weight,bias}`` are concatenated in q, k, v order into
    ``attn.in_proj_weight`` ``[3*width, width]`` / ``attn.in_proj_bias`` ``[3*width]``;
    ``visual_projection.weight`` ``[output_dim, width]`` becomes ``proj = weight.T``
    ``[width, output_dim]``; the other names map one to one (``patch_embedding`` ->
    ``conv1``, ``position_embedding.weight`` -> ``positional_embedding``,
    ``pre_layrnorm`` -> ``ln_pre``, ``post_layernorm`` -> ``ln_post``, ``layer_norm1/2``
    -> ``ln_1/2``, ``mlp.fc1/fc2`` -> ``mlp.c_fc/c_proj``).  Text-tower keys
    (``text_model.*``, ``text_projection.weight``, ``logit_scale``) and
    ``position_ids`` are dropped; unknown ``vision_model.*`` keys are kept under their
    own name so that the key check names them.  Raises :class:`CheckpointError` when a
    layer has only some of q, k, v.
    """
    out: dict[str, torch.Tensor] = {}
    qkv: dict[int, dict[str, torch.Tensor]] = collections.defaultdict(dict)
    for key, value in sd.items():
        if key in _HF_NAMES:
            out[_HF_NAMES[key]] = value
        elif key == "visual_projection.weight":
            out["proj"] = value.t().contiguous() if value.ndim == 2 else value
        elif (m := _HF_LAYER.match(key)) is not None:
            i, rest = int(m.group(1)), m.group(2)
            if rest in _HF_BLOCK_NAMES:
                out[f"transformer.resblocks.{i}.{_HF_BLOCK_NAMES[rest]}"] = value
            elif (a := re.fullmatch(r"self_attn\.([qkv])_proj\.(weight|bias)", rest)) is not None:
                qkv[i][f"{a.group(1)}.{a.group(2)}"] = value
            else:
                out[key] = value
        elif key.startswith("vision_model.") and key not in _HF_IGNORED:
            out[key] = value
    for i, parts in sorted(qkv.items()):
        for kind, target in (("weight", "in_proj_weight"), ("bias", "in_proj_bias")):
            found = [parts.get(f"{p}.{kind}") for p in "qkv"]
            if all(t is None for t in found):
                continue
            if any(t is None for t in found):
                lacking = [
                    f"self_attn.{p}_proj.{kind}" for p, t in zip("qkv", found, strict=True) if t is None
                ]
                raise CheckpointError(f"transformers layer {i} lacks {', '.join(lacking)}")
            present = [t for t in found if t is not None]  # all three, checked above
            out[f"transformer.resblocks.{i}.attn.{target}"] = torch.cat(present, dim=0)
    return out


# --------------------------------------------------------------------------- TorchScript


class _ScriptObject:
    """Stand-in for a TorchScript class (``__torch__.*``): records its pickled state, runs nothing."""

    qualname = "?"

    def __setstate__(self, state: object) -> None:
        self.__dict__["_state"] = state


class _StorageType:
    def __init__(self, name: str, dtype: torch.dtype) -> None:
        self.name, self.dtype = name, dtype


_STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "DoubleStorage": torch.float64,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


def _rebuild_tensor(storage: object, offset: int, size: tuple, stride: tuple, *_: object) -> torch.Tensor:
    """``torch._utils._rebuild_tensor_v2`` on a :func:`_ScriptUnpickler.persistent_load` storage."""
    if not isinstance(storage, torch.Tensor):
        raise CheckpointError("malformed TorchScript archive: a tensor without a storage record")
    try:
        return torch.as_strided(storage, tuple(size), tuple(stride), int(offset))
    except (RuntimeError, TypeError, ValueError) as exc:
        raise CheckpointError(
            f"malformed TorchScript archive: tensor view out of its storage ({exc})"
        ) from exc


def _identity_list(items: object, *_: object) -> object:
    return list(items) if isinstance(items, (list, tuple)) else items


def _type_tag(value: object, *_: object) -> object:
    return value


_ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("collections", "OrderedDict"): collections.OrderedDict,
    # TorchScript's pickler wraps typed list attributes in these (torch/jit/_pickle.py).
    ("torch.jit._pickle", "build_intlist"): _identity_list,
    ("torch.jit._pickle", "build_doublelist"): _identity_list,
    ("torch.jit._pickle", "build_boollist"): _identity_list,
    ("torch.jit._pickle", "build_tensorlist"): _identity_list,
    ("torch.jit._pickle", "restore_type_tag"): _type_tag,
}


class _ScriptUnpickler(pickle.Unpickler):
    """Unpickles a TorchScript ``data.pkl`` into stand-ins and tensors, allowing nothing else."""

    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str, where: str) -> None:
        import io

        super().__init__(io.BytesIO(data))
        self._archive, self._prefix, self._where = archive, prefix, where
        self._classes: dict[str, type] = {}
        self._storages: dict[str, torch.Tensor] = {}

    def find_class(self, module: str, name: str) -> object:
        if module == "__torch__" or module.startswith("__torch__."):
            qual = f"{module}.{name}"
            if qual not in self._classes:
                self._classes[qual] = type(name, (_ScriptObject,), {"qualname": qual})
            return self._classes[qual]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name, _STORAGE_DTYPES[name])
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        raise CheckpointError(
            f"{self._where}: refusing to load: the TorchScript archive's data.pkl names the global "
            f"{module}.{name}, which is not a module class, tensor or storage (nothing was run)"
        )

    def persistent_load(self, pid: object) -> torch.Tensor:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise CheckpointError(f"{self._where}: unsupported persistent id {str(pid)[:80]} in data.pkl")
        _, stype, key, _location, numel = pid
        if not isinstance(stype, _StorageType):
            raise CheckpointError(f"{self._where}: storage record {key!r} has no known storage type")
        if key in self._storages:
            return self._storages[key]
        record = f"{self._prefix}data/{key}"
        try:
            raw = self._archive.read(record)
        except (KeyError, zipfile.BadZipFile, OSError, EOFError) as exc:
            raise CheckpointError(
                f"{self._where}: storage record {record} is missing or damaged ({exc})"
            ) from exc
        itemsize = torch.empty((), dtype=stype.dtype).element_size()
        if len(raw) < int(numel) * itemsize:
            raise CheckpointError(
                f"{self._where}: storage record {record} holds {len(raw)} bytes, "
                f"{int(numel) * itemsize} expected"
            )
        raw = raw[: int(numel) * itemsize]
        flat = (
            torch.frombuffer(bytearray(raw), dtype=stype.dtype) if raw else torch.empty(0, dtype=stype.dtype)
        )
        self._storages[key] = flat
        return flat


def _is_torchscript(archive: zipfile.ZipFile) -> str | None:
    """The record prefix (``"<name>/"``) when the zip is a TorchScript archive, else None."""
    names = archive.namelist()
    for name in names:
        if name.endswith("data.pkl") and name.count("/") == 1:
            prefix = name[: -len("data.pkl")]
            if f"{prefix}constants.pkl" in names or any(n.startswith(f"{prefix}code/") for n in names):
                return prefix
    return None


def read_torchscript_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor attribute of a TorchScript archive, by dotted name, without running its code.

    Parameters, buffers and tensor attributes are indistinguishable in the pickle and are
    all returned (``visual.conv1.weight``, ``logit_scale``, ``input_resolution``...),
    in their stored dtype.  Raises :class:`CheckpointError` if the file is not a
    TorchScript archive, names a global other than ``__torch__`` classes, the tensor
    rebuild function, storage types and TorchScript's list builders, or is damaged.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            prefix = _is_torchscript(archive)
            if prefix is None:
                raise CheckpointError(f"{path}: not a TorchScript archive (no <name>/data.pkl with code/)")
            order = f"{prefix}byteorder"
            if order in archive.namelist() and archive.read(order).decode().strip() != sys.byteorder:
                raise CheckpointError(f"{path}: archive byte order differs from this machine's")
            root = _ScriptUnpickler(archive.read(f"{prefix}data.pkl"), archive, prefix, str(path)).load()
    except CheckpointError:
        raise
    except (
        zipfile.BadZipFile,
        OSError,
        EOFError,
        pickle.UnpicklingError,
        KeyError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        RuntimeError,  # includes RecursionError
        MemoryError,
    ) as exc:
        raise CheckpointError(f"{path}: damaged TorchScript archive ({type(exc).__name__}: {exc})") from exc
    out: dict[str, torch.Tensor] = {}

    def walk(obj: object, prefix: str) -> None:
        state = obj.__dict__.get("_state") if isinstance(obj, _ScriptObject) else None
        if not isinstance(state, dict):
            return
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                out[prefix + name] = value
            elif isinstance(value, _ScriptObject):
                walk(value, f"{prefix}{name}.")

    if not isinstance(root, _ScriptObject):
        raise CheckpointError(f"{path}: TorchScript data.pkl holds a {type(root).__name__}, not a module")
    walk(root, "")
    return out


# --------------------------------------------------------------------------- files


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _torch_load(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load fails in many types; all re-raised typed
        text = str(exc)
        if "Weights only load failed" in text or "weights_only" in text:
            glob = re.search(r"GLOBAL ([\w.]+)", text)
            named = f" (it names the global {glob.group(1)})" if glob else ""
            raise CheckpointError(
                f"{path}: refusing to load: the file holds Python objects besides tensors{named}; "
                "unpickling them could run arbitrary code (torch.load(weights_only=True) rejected it)"
            ) from exc
        raise CheckpointError(f"{path}: cannot read as a PyTorch checkpoint: {_first_line(exc)}") from exc


def _read_file(path: Path) -> tuple[dict[str, object], str]:
    """(raw mapping, container) with container ``"torchscript"``, ``"safetensors"`` or ``"pickle"``."""
    if path.suffix == ".safetensors":
        return dict(load_safetensors(path)), "safetensors"
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                scripted = _is_torchscript(archive) is not None
        except (zipfile.BadZipFile, OSError) as exc:
            raise CheckpointError(f"{path}: damaged zip archive ({exc})") from exc
        if scripted:
            return dict(read_torchscript_state_dict(path)), "torchscript"
        with zipfile.ZipFile(path) as archive:
            if any(n.endswith("/model.json") for n in archive.namelist()):
                raise CheckpointError(
                    f"{path}: a TorchScript archive in the pre-1.4 format (model.json), not supported; "
                    "convert it to a state dict in an environment you trust"
                )
    obj = _torch_load(path)
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a state dict")
    return dict(obj), "pickle"


def _folder_weights(folder: Path) -> tuple[Path, dict | None]:
    """(weights file, parsed config.json or None for an open_clip folder)."""
    config_path = folder / "config.json"
    if config_path.is_file():
        for name in ("model.safetensors", "pytorch_model.bin"):
            if (folder / name).is_file():
                try:
                    config = json.loads(config_path.read_text())
                except (OSError, ValueError) as exc:
                    raise CheckpointError(f"{config_path}: not readable JSON ({exc})") from exc
                if not isinstance(config, dict):
                    raise CheckpointError(f"{config_path}: not a JSON object")
                return folder / name, config
        sharded = sorted(p.name for p in folder.glob("*.index.json"))
        raise CheckpointError(
            f"{folder}: a transformers folder needs model.safetensors or pytorch_model.bin"
            + (f" (sharded weights {sharded} are not supported)" if sharded else "")
        )
    for name in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
        if (folder / name).is_file():
            return folder / name, None
    raise CheckpointError(
        f"{folder}: not a CLIP checkpoint folder (no config.json with model weights, "
        "no open_clip_model.safetensors or open_clip_pytorch_model.bin)"
    )


def _vision_config(config: dict, where: Path) -> tuple[dict, int | None, list[str]]:
    """(vision config, projection_dim, notes) of a transformers config; refuses what this encoder is not."""
    notes: list[str] = []
    model_type = config.get("model_type")
    if model_type == "clip":
        vision = config.get("vision_config") or {}
        projection = config.get("projection_dim", vision.get("projection_dim"))
    elif model_type == "clip_vision_model":
        vision, projection = config, config.get("projection_dim")
    else:
        raise CheckpointError(
            f"{where}: config.json model_type is {model_type!r}; expected 'clip' or 'clip_vision_model'"
        )
    if not isinstance(vision, dict):
        raise CheckpointError(f"{where}: config.json vision_config is not an object")
    act = vision.get("hidden_act")
    if act is None:
        notes.append("config.json has no vision hidden_act; transformers' default quick_gelu assumed")
    elif act != "quick_gelu":
        raise CheckpointError(
            f"{where}: vision hidden_act is {act!r}; this encoder implements OpenAI CLIP's quick_gelu only"
        )
    eps = vision.get("layer_norm_eps", 1e-5)
    if not isinstance(eps, (int, float)) or abs(float(eps) - 1e-5) > 1e-12:
        raise CheckpointError(f"{where}: vision layer_norm_eps is {eps!r}; OpenAI CLIP uses 1e-05")
    return vision, projection if isinstance(projection, int) else None, notes


def _check_against_config(
    spec: ClipVisionSpec, vision: dict, projection: int | None, where: Path
) -> ClipVisionSpec:
    pairs = (
        ("hidden_size", spec.width),
        ("num_hidden_layers", spec.layers),
        ("patch_size", spec.patch_size),
        ("image_size", spec.image_size),
    )
    for field, actual in pairs:
        stated = vision.get(field)
        if stated is not None and stated != actual:
            raise CheckpointError(f"{where}: config.json says {field}={stated!r}, the weights have {actual}")
    if projection is not None and projection != spec.output_dim:
        raise CheckpointError(
            f"{where}: config.json says projection_dim={projection}, the weights have {spec.output_dim}"
        )
    heads = vision.get("num_attention_heads")
    if isinstance(heads, int) and heads != spec.heads:
        if heads < 1 or spec.width % heads:
            raise CheckpointError(f"{where}: num_attention_heads={heads} does not divide width {spec.width}")
        spec = replace(spec, name="custom", heads=heads)
    return spec


# --------------------------------------------------------------------------- loading


def _split_visual(raw: dict[str, object], where: Path, notes: list[str]) -> tuple[dict[str, object], str]:
    """(visual dict in OpenAI names, layout): layout ``"openai"``, ``"open_clip"`` or ``"transformers"``."""
    layout = "openai"
    inner = raw.get("state_dict")
    if isinstance(inner, Mapping) and any(isinstance(v, torch.Tensor) for v in inner.values()):
        notes.append(
            f"weights under 'state_dict' (open_clip training checkpoint; {len(raw) - 1} other entries)"
        )
        raw, layout = dict(inner), "open_clip"
    keys = list(raw)
    visual: dict[str, object]
    if keys and all(k.startswith("module.") for k in keys):
        raw, layout = {k[len("module.") :]: v for k, v in raw.items()}, "open_clip"
        notes.append("'module.' prefix stripped (DDP-wrapped open_clip state dict)")
    if raw and all(k.startswith("frame_model.") for k in raw):
        raw = {k[len("frame_model.") :]: v for k, v in raw.items()}
        notes.append("'frame_model.' prefix stripped (state_dict() of the model vadfeat builds)")
    if any(k.startswith("vision_model.") for k in raw):
        tensors = {k: v for k, v in raw.items() if isinstance(v, torch.Tensor)}
        visual = dict(transformers_to_openai(tensors))
        ignored = [k for k in raw if not k.startswith("vision_model.") and k != "visual_projection.weight"]
        ignored += [k for k in _HF_IGNORED if k in raw]
        if "visual_projection.weight" not in raw:
            raise CheckpointError(
                f"{where}: no visual_projection.weight: a transformers CLIPVisionModel without the "
                "projection cannot give CLIP's image embedding; use CLIPModel or "
                "CLIPVisionModelWithProjection weights"
            )
        layout = "transformers"
    elif any(k.startswith("visual.") for k in raw):
        visual = {k[len("visual.") :]: v for k, v in raw.items() if k.startswith("visual.")}
        ignored = [k for k in raw if not k.startswith("visual.")]
    elif all(m in raw for m in _BARE_MARKERS):
        visual, ignored = dict(raw), []
        notes.append("visual-only state dict (OpenAI names without the 'visual.' prefix)")
    else:
        shown = ", ".join(keys[:_SHOW])
        raise CheckpointError(
            f"{where}: not a CLIP image-encoder checkpoint: none of visual.conv1.weight, "
            f"vision_model.embeddings.patch_embedding.weight, conv1.weight found (keys: {shown}"
            + (f" ... {len(keys)} in all)" if len(keys) > _SHOW else ")")
        )
    if ignored:
        notes.append(
            f"{len(ignored)} non-visual entries ignored (text tower etc.: {', '.join(ignored[:3])} ...)"
        )
    if any(k.startswith(("layer1.", "attnpool.")) for k in visual):
        raise CheckpointError(
            f"{where}: a CLIP ResNet image encoder (layer1..., attnpool); only ViT is supported"
        )
    if any(k.startswith("trunk.") for k in visual):
        raise CheckpointError(f"{where}: an open_clip timm-tower model (visual.trunk...); not supported")
    return visual, layout


def _to_float32(visual: dict[str, object], where: Path, notes: list[str]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    converted: collections.Counter[str] = collections.Counter()
    for key, value in visual.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{where}: visual entry {key!r} is a {type(value).__name__}, not a tensor")
        if not value.is_floating_point():
            raise CheckpointError(
                f"{where}: visual tensor {key!r} has dtype {value.dtype}; weights must be float"
            )
        if value.dtype != torch.float32:
            converted[str(value.dtype).replace("torch.", "")] += 1
            value = value.float()
        out[key] = value.contiguous()
    for dtype, count in sorted(converted.items()):
        notes.append(f"{count} {dtype} tensors converted to float32")
    return out


def _check_keys(sd: Mapping[str, torch.Tensor], spec: ClipVisionSpec, where: Path) -> None:
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in ClipVisual(spec).state_dict().items()}
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    misshapen = [
        f"{k} {list(sd[k].shape)} (expected {list(shape)})"
        for k, shape in expected.items()
        if k in sd and tuple(sd[k].shape) != shape
    ]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("misshapen", misshapen)):
        if items:
            problems.append(
                f"{label} visual keys ({len(items)}): {', '.join(items[:_SHOW])}"
                + (" ..." if len(items) > _SHOW else "")
            )
    if problems:
        raise CheckpointError(f"{where}: does not fit CLIP {spec.name}: " + "; ".join(problems))


def load_clip_checkpoint(path: str | Path) -> ClipCheckpoint:
    """Read a CLIP image encoder's weights from any format of :data:`CLIP_FORMATS` (file or folder).

    Returns a :class:`ClipCheckpoint` whose ``state_dict`` loads with ``strict=True`` into
    ``build_clip_visual(checkpoint.spec)``.  Raises :class:`CheckpointError` (naming
    the path and the keys or global at fault) for a missing, damaged, unsafe, non-CLIP
    or inconsistent checkpoint.
    """
    path = Path(path)
    notes: list[str] = []
    config: dict | None = None
    folder_kind = None
    if path.is_dir():
        weights, config = _folder_weights(path)
        folder_kind = "transformers" if config is not None else "open_clip"
    elif path.is_file():
        weights = path
    else:
        raise CheckpointError(f"{path}: no such checkpoint file or folder")
    vision: dict | None = None
    projection: int | None = None
    if config is not None:  # settings this encoder cannot honour are refused before reading weights
        vision, projection, config_notes = _vision_config(config, path)
        notes.extend(config_notes)
    raw, container = _read_file(weights)
    visual, layout = _split_visual(raw, weights, notes)
    if container == "torchscript":
        fmt = "openai-torchscript"
        notes.append("read from a TorchScript archive without running its code")
    elif layout == "transformers":
        fmt = "transformers" if config is not None else "transformers-state-dict"
        if config is None:
            notes.append("no config.json: quick_gelu, layer_norm_eps 1e-05 and heads = width // 64 assumed")
    elif layout == "open_clip" or folder_kind == "open_clip":
        fmt = "open_clip"
    else:
        fmt = "openai-safetensors" if container == "safetensors" else "openai-state-dict"
    if fmt == "open_clip":
        notes.append(
            "open_clip: the activation is not recorded in the weights; QuickGELU (OpenAI's) is used, "
            "wrong for open_clip models trained with nn.GELU (names without -quickgelu)"
        )
    if config is not None and layout != "transformers":
        raise CheckpointError(f"{path}: config.json present but the weights are not in transformers' layout")
    sd = _to_float32(visual, weights, notes)
    try:
        spec = infer_spec(sd)
    except CheckpointError as exc:
        raise CheckpointError(f"{weights}: {exc}") from None
    if vision is not None:
        spec = _check_against_config(spec, vision, projection, path)
    if spec.name == "custom":
        notes.append(
            f"size is none of the released ones ({spec.image_size}px, patch {spec.patch_size}, width "
            f"{spec.width}, {spec.layers} layers, {spec.heads} heads, output {spec.output_dim})"
        )
    _check_keys(sd, spec, weights)
    for note in notes:
        log.debug("%s: %s", path, note)
    return ClipCheckpoint(
        state_dict=sd, spec=spec, format=fmt, sha256=checkpoint_sha256(weights), notes=tuple(notes), path=path
    )
