"""Exception hierarchy: every error vadfeat raises on purpose, in one module.

Library code raises these (chained with ``from`` where a lower-level error caused
them); only the multi-video driver catches per-video failures, records them in the
run manifest and carries on.  Boundary errors (bad configuration, unknown model,
mismatched checkpoint) are never caught: they stop the run before work starts.

Each class's ``exit_code`` is the command-line exit status it maps to when it
reaches :func:`vadfeat.cli.main` (one line on stderr, no traceback): 2 for usage
and configuration errors (:class:`ConfigError`, :class:`CheckpointError` and
their subclasses), 1 for everything else (see ``vadfeat --help``, "exit codes").
The older import paths (``vadfeat.store.reader.FeatureReadError``,
``vadfeat.dataset.labels.LabelError``) re-import these classes.
"""

from __future__ import annotations

from typing import ClassVar


class VadfeatError(Exception):
    """Base class of every error vadfeat raises on purpose.

    Raised as such only where no subclass fits.  CLI exit code 1.
    """

    #: The ``vadfeat`` command's exit status for this error (``vadfeat --help``, "exit codes").
    exit_code: ClassVar[int] = 1


class ConfigError(VadfeatError, ValueError):
    """An option, preset or setting is invalid, found before any work starts.

    Raised by option validation, preset resolution, output-folder checks (outputs
    made with other settings, a file vadfeat did not write where it keeps its run
    files) and input discovery (a named input that does not exist).  CLI exit code 2.
    """

    exit_code: ClassVar[int] = 2


class UnknownModelError(ConfigError, KeyError):
    """A model size name is not registered (``--model``, ``get_spec``).  CLI exit code 2."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class FeatureReadError(ConfigError):
    """A features folder as a whole cannot be read (missing or holding no feature file).

    Raised by :func:`vadfeat.store.reader.read_features` and the commands built on
    it (``inspect``, ``align``, ``lists``, ``export``, ``resample``).  A
    :class:`ConfigError`: on the command line it is a usage error (CLI exit code 2),
    unlike a single unreadable video, which is reported by name.
    """


class ShardReadError(VadfeatError, ValueError):
    """A shard file (``shard-<writer>-<seq>.tar`` or ``.parquet``) cannot be read as vadfeat's.

    Raised by :mod:`vadfeat.store.shards` (``iter_shard``, ``read_video``, ``index_shard``)
    naming the file (and the member).  ``foreign``: the file is readable but not a shard
    vadfeat wrote (its members are not vadfeat's sealed sidecars naming it), so it is never
    read as output, replaced or deleted; otherwise it is damaged, cut or unreadable.
    CLI exit code 1.
    """

    def __init__(self, message: str, *, foreign: bool = False) -> None:
        super().__init__(message)
        self.foreign = foreign


class LabelError(ConfigError):
    """A ground-truth file as a whole cannot be read (wrong format, missing, not a dict).

    Raised by :func:`vadfeat.dataset.labels.read_labels` and the ``labels``/``align``
    commands.  A :class:`ConfigError`: bad input named by the user (CLI exit code 2).
    Problems with single videos are :class:`~vadfeat.dataset.labels.LabelIssue`
    records instead.
    """


class CheckpointError(VadfeatError):
    """A checkpoint cannot be read, is not a checkpoint, or does not fit the model.

    Raised by :func:`vadfeat.backbones.videomae.checkpoints.load_checkpoint`,
    ``load_model`` and ``compress_checkpoint`` before any video is touched.  CLI exit
    code 2 (the exit-code table's "no checkpoint").
    """

    exit_code: ClassVar[int] = 2


class UnrecognizedCheckpointError(CheckpointError, ConfigError):
    """No registered backbone claims a checkpoint: the message names the file, every backbone
    tried and why each declined.  A :class:`CheckpointError` (what checkpoint readers raise)
    and a :class:`ConfigError` (the file given is a usage error).  CLI exit code 2."""


class ForeignFileError(VadfeatError):
    """A file at an export target path that ``vadfeat export`` did not write there.

    Raised inside :mod:`vadfeat.dataset.export` for one video; the export catches it,
    leaves the file alone and reports that video by name (the run goes on; the
    command's exit code is then 1).  Reaching the CLI on its own: exit code 1.
    """


class UntrustedSidecar(VadfeatError, ValueError):
    """A sidecar whose content was changed after vadfeat wrote it (its ``sidecar_sha256``
    does not match), so its numbers (frame count, snippet ranges) are not used.

    Raised by :func:`vadfeat.store.reader.read_features` for one video, which it reports
    by name and leaves out (the command's exit code is then 1); ``extract`` redoes such a
    video.  Reaching the CLI on its own: exit code 1.
    """


class VideoError(VadfeatError):
    """A single input video cannot be turned into features; the run goes on.

    The engines catch it per video and name the video in the manifest and the
    summary (exit code 1 at the end).  Reaching the CLI on its own: exit code 1.
    """


class VideoOpenError(VideoError):
    """The file is missing, unreadable, empty, or not a container FFmpeg can open.  CLI exit code 1."""


class NoAudioStreamError(VideoOpenError):
    """An audio backbone's input holds no audio stream ("no audio stream").  CLI exit code 1."""


class AudioGridError(VideoError):
    """The visual extraction an audio run takes its snippet grid from (``--grid-from``) has no
    usable sidecar for this video: missing, unreadable, or a field that cannot place the
    audio windows.  CLI exit code 1."""


class DecodeError(VideoError):
    """Decoding failed part-way (corrupt or truncated data) under ``on_corrupt='fail'``.  CLI exit code 1."""


class VideoTooShortError(VideoError):
    """The video yields fewer frames than one snippet needs under ``tail='drop'``.  CLI exit code 1."""
