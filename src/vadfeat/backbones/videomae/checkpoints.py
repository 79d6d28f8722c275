"""Read every VideoMAE V2 checkpoint format users have into one canonical state dict.

Formats (docs/REFERENCE.md, section 2), detected from the file and its keys, never from its name:

* ``pth``: model-zoo ``.pth``/``.pt``; the state dict at top level or under
  ``'module'``/``'model'``/``'state_dict'``; fp16 or fp32 tensors; key prefixes
  ``module.``, ``backbone.``, ``encoder.``, ``_orig_mod.`` in any nesting.
* ``pth-pretrain``: a pre-training checkpoint (``encoder.*`` + ``decoder.*``,
  ``mask_token``, ``encoder_to_decoder.*``, no ``fc_norm``); good for ``mean`` and
  ``stats`` pooling only.
* ``hf-hub``: a folder laid out like ``OpenGVLab/VideoMAEv2-*`` (``config.json``
  with a ``model_config`` block + ``model.safetensors``, keys with or without a
  ``model.`` prefix), or ``hf://owner/repo[@revision]`` fetched with
  ``huggingface_hub``.
* ``transformers``: ``VideoMAEModel`` / ``VideoMAEForVideoClassification`` state
  dicts (4.x ``q_bias``/``v_bias`` or 5.x ``query.bias``/``value.bias``), as a
  file or a ``save_pretrained`` folder whose ``config.json`` gives the LayerNorm eps.
* ``safetensors``: a plain ``.safetensors`` with the official key names (what
  :func:`save_canonical` writes).

Loading is safe: ``torch.load(..., weights_only=True)`` only; a file that needs
arbitrary unpickling is refused with a message saying why.  ``allow_pickle=True``
(CLI: ``vadfeat checkpoint convert --unsafe-allow-pickle``) lifts that for a file
the user trusts, so it can be converted once to safetensors: UNSAFE, since
unpickling a hostile file runs its code with the user's rights.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, get_args

import torch

from vadfeat._types import Quantize
from vadfeat.backbones._files import (
    checkpoint_sha256,  # sha256, cached by (path, size, mtime, inode)
    folder_weights,
    load_safetensors,
    resolve_hf,
    safetensors_metadata,
    torch_dtype,
    torch_load,
    write_safetensors,
)
from vadfeat.backbones._files import (
    follow_umask as follow_umask,  # re-exported: its old home
)
from vadfeat.backbones._registry import MAX_TOKENS
from vadfeat.backbones.videomae.model import (
    ModelSpec,
    find_registered,
    get_spec,
    heads_for_width,
    sincos_table,
    spec_dims,
)
from vadfeat.errors import CheckpointError, ConfigError

log = logging.getLogger(__name__)

# Keys a format is known to carry that features never use.
_IGNORABLE = re.compile(
    r"^(head\.|classifier\.|decoder\.|decoder_|encoder_to_decoder\.|mask_token$|norm\.|pos_embed$)"
)
_PREFIXES = ("_orig_mod.", "module.", "model.", "backbone.", "encoder.", "videomae.")
_CONTAINER_KEYS = ("module", "model", "state_dict")
# Most tokens per clip a checkpoint's geometry may give (ViT-g at 16x224 px: 2048): the
# registry's MAX_TOKENS, which the pipeline's geometry check applies too.


@dataclass(frozen=True)
class CheckpointInfo:
    """What the loader found in a checkpoint; recorded in every output's sidecar."""

    path: str
    format: str
    detail: str
    model_name: str
    spec: ModelSpec
    dtype: str
    num_params: int
    sha256: str
    has_fc_norm: bool
    ignored_keys: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())
    # vadfeat.backbones.videomae.compress record (pruning rate, quantization) of a compressed checkpoint.
    compression: dict | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["spec"] = self.spec.to_dict()
        d["ignored_keys"] = list(self.ignored_keys)
        d["notes"] = list(self.notes)
        return d


# --------------------------------------------------------------------------- key mapping


def _strip_prefixes(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Strip wrapper prefixes shared by the encoder keys, repeatedly (``module._orig_mod.``)."""
    stripped: list[str] = []
    while True:
        for prefix in _PREFIXES:
            hits = [k for k in sd if k.startswith(prefix)]
            # Only strip a prefix that wraps the encoder (pre-training checkpoints put
            # decoder.* beside encoder.*, so "all keys" would be too strict).
            inner = ("patch_embed.", "blocks.", "embeddings.", "encoder.", *_PREFIXES)
            if hits and any(k[len(prefix):].startswith(inner) for k in hits):
                if prefix == "encoder." and any(k.startswith("encoder.layer.") for k in hits):
                    continue  # transformers' own "encoder.layer.N" is not a wrapper
                sd = {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in sd.items()}
                stripped.append(prefix)
                break
        else:
            return sd, stripped


def _is_transformers(sd: Mapping[str, torch.Tensor]) -> bool:
    return any(k.startswith(("embeddings.patch_embeddings.", "encoder.layer.")) for k in sd)


def transformers_to_official(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map ``transformers`` VideoMAE keys (after the ``videomae.`` prefix) to official ones.

    ``query``/``key``/``value`` weights are concatenated into the fused ``qkv``;
    4.x stores ``q_bias``/``v_bias``, 5.x ``query.bias``/``value.bias``; the key
    never has a bias.  ``classifier.*`` is the ``head``.
    """
    out: dict[str, torch.Tensor] = {}
    rename = {
        "embeddings.patch_embeddings.projection.": "patch_embed.proj.",
        "fc_norm.": "fc_norm.",
        "classifier.": "head.",
        "layernorm.": "norm.",
    }
    layer = re.compile(r"^encoder\.layer\.(\d+)\.(.+)$")
    qkv: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in sd.items():
        m = layer.match(key)
        if not m:
            for src, dst in rename.items():
                if key.startswith(src):
                    out[dst + key[len(src):]] = value
                    break
            else:
                out[key] = value  # left for the unexpected-key check to name
            continue
        i, rest = int(m.group(1)), m.group(2)
        qkv_part = {
            "attention.attention.query.weight": "q",
            "attention.attention.key.weight": "k",
            "attention.attention.value.weight": "v",
        }
        if rest in qkv_part:
            qkv.setdefault(i, {})[qkv_part[rest]] = value
            continue
        simple = {
            "attention.attention.q_bias": "attn.q_bias",
            "attention.attention.query.bias": "attn.q_bias",
            "attention.attention.v_bias": "attn.v_bias",
            "attention.attention.value.bias": "attn.v_bias",
            "attention.output.dense.weight": "attn.proj.weight",
            "attention.output.dense.bias": "attn.proj.bias",
            "intermediate.dense.weight": "mlp.fc1.weight",
            "intermediate.dense.bias": "mlp.fc1.bias",
            "output.dense.weight": "mlp.fc2.weight",
            "output.dense.bias": "mlp.fc2.bias",
            "layernorm_before.weight": "norm1.weight",
            "layernorm_before.bias": "norm1.bias",
            "layernorm_after.weight": "norm2.weight",
            "layernorm_after.bias": "norm2.bias",
        }
        out[f"blocks.{i}.{simple.get(rest, rest)}"] = value
    for i, parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            missing = sorted({"q", "k", "v"} - set(parts))
            raise CheckpointError(f"transformers layer {i} lacks attention weights {missing}")
        out[f"blocks.{i}.attn.qkv.weight"] = torch.cat((parts["q"], parts["k"], parts["v"]))
    return out


def canonicalize(
    sd: Mapping[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, object]]:
    """Any supported key layout -> official key names.  Returns ``(state_dict, facts)``."""
    sd = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    sd, stripped = _strip_prefixes(sd)
    facts: dict[str, object] = {"prefixes": stripped}
    if _is_transformers(sd):
        facts["transformers"] = True
        facts["transformers_keys"] = (
            "4.x (q_bias/v_bias)"
            if any(k.endswith("attention.attention.q_bias") for k in sd)
            else "5.x (query.bias/value.bias)"
        )
        sd = transformers_to_official(sd)
    facts["pretrain"] = any(k.startswith(("decoder.", "encoder_to_decoder.", "mask_token")) for k in sd)
    return sd, facts


def split_ignored(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], tuple[str, ...]]:
    kept = {k: v for k, v in sd.items() if not _IGNORABLE.match(k)}
    return kept, tuple(sorted(k for k in sd if k not in kept))


# --------------------------------------------------------------------------- architecture


def detect_spec(
    sd: Mapping[str, torch.Tensor],
    *,
    num_heads: int | None = None,
    img_size: int = 224,
    num_frames: int = 16,
    norm_eps: float = 1e-6,
    fc_norm_eps: float = 1e-6,
) -> ModelSpec:
    """Architecture from tensor shapes: width, depth, patch, tubelet and MLP width.

    Heads do not show in shapes: they come from the registered size of that width,
    or ``num_heads`` for widths no registered size has.
    """
    try:
        w = sd["patch_embed.proj.weight"]
    except KeyError:
        raise CheckpointError(
            "no patch embedding ('patch_embed.proj.weight') found: not a VideoMAE V2 "
            f"state dict (first keys: {sorted(sd)[:5]})"
        ) from None
    if w.ndim != 5 or 0 in w.shape or w.shape[-1] != w.shape[-2]:
        raise CheckpointError(f"patch_embed.proj.weight has shape {tuple(w.shape)}, expected a "
                              "Conv3d kernel [D, C, tubelet, patch, patch]")
    embed_dim, in_chans, tubelet, patch = w.shape[0], w.shape[1], w.shape[2], w.shape[-1]
    depth = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})
    if depth == 0:
        raise CheckpointError("state dict has a patch embedding but no transformer blocks")
    try:
        fc1 = sd["blocks.0.mlp.fc1.weight"]
    except KeyError:
        raise CheckpointError("blocks.0.mlp.fc1.weight missing: cannot tell the MLP width") from None
    if fc1.ndim != 2 or 0 in fc1.shape:
        raise CheckpointError(f"blocks.0.mlp.fc1.weight has shape {tuple(fc1.shape)}, expected a "
                              "matrix [MLP width, D]")
    mlp_hidden = fc1.shape[0]
    dims = (embed_dim, depth, patch, tubelet, mlp_hidden)
    registered = find_registered(dims)
    heads = num_heads or (registered.num_heads if registered else heads_for_width(embed_dim))
    if heads is None:
        raise CheckpointError(
            f"width {embed_dim} matches no registered model, so the number of attention "
            "heads is unknown; pass num_heads (--num-heads)"
        )
    name = registered.name if registered else (
        f"custom(D={embed_dim},depth={depth},heads={heads},mlp={mlp_hidden},patch={patch})"
    )
    return ModelSpec(
        name=name, embed_dim=embed_dim, depth=depth, num_heads=heads, mlp_hidden=mlp_hidden,
        patch_size=patch, tubelet_size=tubelet, img_size=img_size, num_frames=num_frames,
        in_chans=in_chans, norm_eps=norm_eps, fc_norm_eps=fc_norm_eps,
    )


# --------------------------------------------------------------------------- files


def _unwrap(obj: object, path: Path) -> tuple[dict[str, torch.Tensor], str | None]:
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a state dict")
    for key in _CONTAINER_KEYS:
        inner = obj.get(key)
        if isinstance(inner, Mapping) and any(isinstance(v, torch.Tensor) for v in inner.values()):
            return dict(inner), key
    if any(isinstance(v, torch.Tensor) for v in obj.values()):
        return dict(obj), None
    raise CheckpointError(
        f"{path}: no tensors found at top level or under {', '.join(map(repr, _CONTAINER_KEYS))}"
    )


def load_checkpoint(
    source: str | Path, *, num_heads: int | None = None, allow_pickle: bool = False
) -> tuple[dict[str, torch.Tensor], CheckpointInfo]:
    """Read any supported checkpoint -> ``(official state dict, CheckpointInfo)``.

    ``allow_pickle=True`` loads ``.pth`` files with full unpickling: UNSAFE (a
    hostile file runs code), only for converting a trusted file that holds Python
    objects besides tensors.

    The returned state dict holds only the keys the feature model uses (``fc_norm``
    may be absent for pre-training checkpoints); the rest are listed in
    ``info.ignored_keys``.
    """
    src = str(source)
    if src.startswith("hf://"):
        path = resolve_hf(src)
    else:
        path = Path(source).expanduser()
        if not path.exists():
            raise CheckpointError(f"checkpoint not found: {path}")
    config: dict = {}
    kind = "file"
    if path.is_dir():
        cfg_path = path / "config.json"
        if cfg_path.is_file():
            try:
                config = json.loads(cfg_path.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise CheckpointError(f"{cfg_path}: unreadable config.json ({exc})") from exc
        kind = "folder"
        weights = folder_weights(path)
    else:
        weights = path
    if weights.stat().st_size == 0:
        raise CheckpointError(f"{weights}: empty file, not a checkpoint")

    container = None
    compression = None
    if weights.suffix == ".safetensors":
        raw = load_safetensors(weights)
        compression = read_compression(weights)
        if compression is not None:  # int8 weights + scales -> float; load_model re-quantizes
            raw = decompress_state(raw, compression)
    else:
        raw, container = _unwrap(torch_load(weights, allow_pickle=allow_pickle), weights)

    sd, facts = canonicalize(raw)
    kept, ignored = split_ignored(sd)
    dtypes = sorted({str(v.dtype).replace("torch.", "") for v in kept.values()})

    img_size, num_frames = 224, 16
    norm_eps = fc_norm_eps = 1e-6
    notes: list[str] = []
    where = f"{path}/config.json"
    if not isinstance(config, dict):
        raise CheckpointError(f"{where} must hold a JSON object, got {type(config).__name__}")
    if "model_config" in config:
        mc = config["model_config"]
        if not isinstance(mc, dict):
            raise CheckpointError(f"{where}: model_config must be a JSON object, got "
                                  f"{type(mc).__name__}")
        img_size = _config_int(where, "model_config.img_size", mc.get("img_size", img_size))
        num_frames = _config_int(where, "model_config.num_frames", mc.get("num_frames", num_frames))
        num_heads = num_heads or _config_opt_int(where, "model_config.num_heads", mc.get("num_heads"))
    elif config.get("model_type") == "videomae":
        img_size = _config_int(where, "image_size", config.get("image_size", img_size))
        num_frames = _config_int(where, "num_frames", config.get("num_frames", num_frames))
        num_heads = num_heads or _config_opt_int(where, "num_attention_heads",
                                                 config.get("num_attention_heads"))
        if "layer_norm_eps" in config:
            norm_eps = _config_eps(where, "layer_norm_eps", config["layer_norm_eps"])
            # transformers builds fc_norm with nn.LayerNorm's default eps.
            fc_norm_eps = 1e-5
            notes.append(
                f"LayerNorm eps from config.json: blocks {norm_eps:g}, fc_norm {fc_norm_eps:g}"
            )
    try:
        spec = detect_spec(
            kept, num_heads=num_heads, img_size=img_size, num_frames=num_frames,
            norm_eps=norm_eps, fc_norm_eps=fc_norm_eps,
        )
    except ConfigError as exc:  # the file's shapes or config.json, not the user's options
        origin = f" (img_size {img_size}, num_frames {num_frames} from {where})" if config else ""
        raise CheckpointError(f"{path}: {exc}{origin}") from exc
    if spec.num_tokens > MAX_TOKENS:  # the position table alone would be tokens x D floats
        raise CheckpointError(
            f"{path}: img_size {img_size} and num_frames {num_frames} give {spec.num_tokens} tokens "
            f"per clip, more than the {MAX_TOKENS} any VideoMAE V2 model was built for "
            f"(ViT-g: 2048){f'; check {where}' if config else ''}"
        )

    if compression is not None:
        fmt = "vadfeat-compressed"
        detail = describe_compression(compression)
    elif facts.get("transformers"):
        fmt = "transformers"
        detail = f"transformers VideoMAE state dict, {facts['transformers_keys']} keys"
    elif kind == "folder" and "model_config" in config:
        fmt = "hf-hub"
        detail = "Hugging Face hub folder (config.json model_config + safetensors)"
    elif facts["pretrain"]:
        fmt = "pth-pretrain" if weights.suffix != ".safetensors" else "safetensors-pretrain"
        detail = "pre-training checkpoint (encoder + decoder); no fc_norm, use mean or stats pooling"
    elif weights.suffix == ".safetensors":
        fmt = "safetensors"
        detail = "safetensors with official key names"
    else:
        fmt = "pth"
        detail = "model-zoo checkpoint" + (
            f", state dict under {container!r}" if container else ", state dict at top level"
        )
    if facts["prefixes"]:
        detail += f", prefixes stripped: {' '.join(facts['prefixes'])}"  # type: ignore[arg-type]

    _check_pos_embed(sd, spec, notes)
    has_fc_norm = "fc_norm.weight" in kept
    info = CheckpointInfo(
        path=src,
        format=fmt,
        detail=detail,
        model_name=spec.name,
        spec=spec,
        dtype="/".join(dtypes),
        num_params=sum(v.numel() for v in kept.values()),
        sha256=checkpoint_sha256(weights),
        has_fc_norm=has_fc_norm,
        ignored_keys=ignored,
        notes=tuple(notes),
        compression=compression,
    )
    log.debug("checkpoint %s: %s (%s)", src, info.format, info.detail)
    return kept, info


def _config_opt_int(where: str, field: str, value: object) -> int | None:
    """:func:`_config_int`, or None where the field is absent (``null``)."""
    return None if value is None else _config_int(where, field, value)


def _config_int(where: str, field: str, value: object) -> int:
    """A positive integer from a checkpoint's config.json (JSON may hold anything there)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 1 << 20:
        raise CheckpointError(f"{where}: {field} must be a positive integer, got {value!r}")
    return value


def _config_eps(where: str, field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise CheckpointError(f"{where}: {field} must be a small positive number, got {value!r}")
    return float(value)


def _check_pos_embed(sd: Mapping[str, torch.Tensor], spec: ModelSpec, notes: list[str]) -> None:
    """A stored ``pos_embed`` is only harmless if it is the fixed sin-cos table."""
    stored = sd.get("pos_embed")
    if stored is None:
        return
    fixed = sincos_table(spec.num_tokens, spec.embed_dim)
    stored = stored.float().reshape(-1, spec.embed_dim)
    if stored.shape != fixed.shape or (stored - fixed).abs().max() > 1e-3:
        raise CheckpointError(
            "checkpoint stores a position embedding that is not VideoMAE V2's fixed sin-cos "
            f"table (shape {tuple(stored.shape)}); learnable position embeddings are not supported"
        )
    notes.append("pos_embed in the file equals the fixed sin-cos table; the table is rebuilt")


def check_keys(sd: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], *,
               allow_missing: tuple[str, ...] = ()) -> None:
    """Missing or unexpected keys, or shape mismatches, are errors that name them."""
    missing = [k for k in expected if k not in sd and k not in allow_missing]
    unexpected = [k for k in sd if k not in expected]
    wrong = [
        f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected if k in sd and sd[k].shape != expected[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {', '.join(missing[:8])}"
                        + (" ..." if len(missing) > 8 else ""))
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:8])}"
                        + (" ..." if len(unexpected) > 8 else ""))
    if wrong:
        problems.append("shape mismatches: " + "; ".join(wrong[:5]))
    if problems:
        raise CheckpointError("checkpoint does not fit the model: " + " | ".join(problems))


def save_canonical(
    sd: Mapping[str, torch.Tensor],
    out: str | Path,
    *,
    dtype: str = "fp16",
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write official key names as safetensors (no pickle), atomically."""
    target = torch_dtype(dtype)
    tensors = {k: v.detach().to(target).contiguous() for k, v in sd.items()}
    return write_safetensors(tensors, out, metadata={"format": "vadfeat-canonical", **(metadata or {})})


# --------------------------------------------------------------------------- compressed checkpoints
# The reading side of the format that vadfeat.backbones.videomae.compress writes (that module
# imports these back, so that neither module imports the other at call time).

QUANTIZE_MODES: tuple[str, ...] = get_args(Quantize)
METADATA_KEY = "vadfeat_compression"
SCALE_SUFFIX = "_scale"
INT8_SCHEME = "per-tensor symmetric int8, scale = max|w| / 127, zero point 0 (dynamic activations)"


def read_compression(path: str | Path) -> dict[str, Any] | None:
    """The compression record in a safetensors header, or ``None`` for an ordinary file."""
    raw = safetensors_metadata(path).get(METADATA_KEY)
    if raw is None:
        return None
    try:
        record = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: damaged {METADATA_KEY} metadata ({exc})") from exc
    if not isinstance(record, dict):
        raise CheckpointError(f"{path}: {METADATA_KEY} metadata is not a JSON object")
    _check_record(path, record)
    return record


# The record's fields that loading and describing a checkpoint read, with their JSON types.
_RECORD_STRINGS = ("prune_method", "quantize_scheme", "float_dtype", "model", "source",
                   "source_format", "source_sha256", "vadfeat_version")


def _check_record(path: str | Path, record: Mapping[str, Any]) -> None:
    """Every field of a compression record has the type :func:`compress_checkpoint` writes."""
    def bad(name: str, what: str) -> CheckpointError:
        return CheckpointError(f"{path}: {METADATA_KEY} metadata: {name} must be {what}, "
                               f"got {record[name]!r}")

    prune = record.get("prune", 0.0)
    if isinstance(prune, bool) or not isinstance(prune, (int, float)) or not 0 <= prune < 1:
        raise bad("prune", "a fraction in [0, 1)")
    quantize = record.get("quantize")
    if quantize is not None and quantize not in QUANTIZE_MODES:
        raise bad("quantize", f"null or one of {', '.join(QUANTIZE_MODES)}")
    heads = record.get("num_heads")
    if heads is not None and (isinstance(heads, bool) or not isinstance(heads, int) or heads < 1):
        raise bad("num_heads", "a positive integer")
    for name in _RECORD_STRINGS:
        if record.get(name) is not None and not isinstance(record[name], str):
            raise bad(name, "a string")


def decompress_state(raw: Mapping[str, torch.Tensor], record: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Int8 weights with their ``<key>_scale`` -> float32 ``int8 * scale``; other tensors as stored."""
    out: dict[str, torch.Tensor] = {}
    for key, value in raw.items():
        if key.endswith(SCALE_SUFFIX) and key[: -len(SCALE_SUFFIX)] in raw:
            continue
        if value.dtype == torch.int8:
            scale = raw.get(key + SCALE_SUFFIX)
            if scale is None or scale.numel() != 1:
                raise CheckpointError(f"int8 tensor {key} has no {key}{SCALE_SUFFIX} beside it")
            out[key] = value.float() * scale.float()
        else:
            out[key] = value
    return out


def describe_compression(record: Mapping[str, Any]) -> str:
    parts = []
    if record.get("prune"):
        parts.append(f"{record['prune']:.0%} L1-pruned Conv3d/Linear weights")
    if record.get("quantize"):
        parts.append(f"{record['quantize']} Linear weights ({INT8_SCHEME.split(',')[0]})")
    return "vadfeat compressed checkpoint: " + (", ".join(parts) or "no changes") + (
        f"; from {record.get('source_format')} sha256 {str(record.get('source_sha256'))[:12]}"
    )



def with_spec(info: CheckpointInfo, **changes: Any) -> CheckpointInfo:
    return replace(info, spec=replace(info.spec, **changes))


def resolve_spec(model: str | None, info: CheckpointInfo | None) -> ModelSpec:
    """Check ``--model`` against what the checkpoint holds (fail loudly at the boundary)."""
    if info is None:
        if model is None:
            raise ConfigError("give a checkpoint, or a model name for random weights")
        return get_spec(model)
    if model is None:
        return info.spec
    want = get_spec(model)
    if spec_dims(want) != spec_dims(info.spec):
        raise CheckpointError(
            f"checkpoint {info.path} holds {info.spec.name} (width {info.spec.embed_dim}, "
            f"depth {info.spec.depth}, patch {info.spec.patch_size}, MLP {info.spec.mlp_hidden}) "
            f"but the model asked for is {want.name} (width {want.embed_dim}, depth {want.depth}, "
            f"patch {want.patch_size}, MLP {want.mlp_hidden}); drop --model to use the checkpoint's size"
        )
    return info.spec
