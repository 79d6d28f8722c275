"""Input discovery: files, folders, lists, names that never collide or escape."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path, PurePosixPath

import pytest

from vadfeat.errors import ConfigError
from vadfeat.io.inputs import VideoItem, discover, output_stem
from vadfeat.testing import synth


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")  # discovery never opens files
    return path


def _frames(folder: Path, n: int = 2) -> Path:
    synth.write_frame_folder(folder, synth.solid_frames(n, (0, 0, 0), width=8, height=8))
    return folder


def _names(items):
    return [str(i.name) for i in items]


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "ds"
    for rel in ("Train/002.mp4", "Train/010.avi", "Test/001.MKV", "Test/sub/003.webm",
                ".cache/hidden.mp4", "Test/._001.mp4", "Train/readme.txt", "Train/poster.jpg"):
        _touch(root / rel)
    _frames(root / "frames" / "vid01")
    _frames(root / "frames" / "vid02")
    return root


def test_folder_is_searched_recursively(dataset):
    items = discover([dataset])
    assert _names(items) == [
        "Test/001.MKV", "Test/sub/003.webm", "Train/002.mp4", "Train/010.avi",
        "frames/vid01", "frames/vid02",
    ]
    assert all(i.source.is_absolute() for i in items)
    assert items[0].source == (dataset / "Test/001.MKV").absolute()


def test_video_file_and_frame_folder_inputs(dataset):
    items = discover([dataset / "Train/002.mp4", dataset / "frames/vid01"])
    assert _names(items) == ["002.mp4", "vid01"]


def test_extensions_filter(dataset):
    assert _names(discover([dataset], extensions=["MP4", "avi"])) == [
        "Train/002.mp4", "Train/010.avi", "frames/vid01", "frames/vid02"
    ]
    with pytest.raises(ConfigError):
        discover([dataset], extensions=[])


def test_missing_inputs_are_usage_errors(tmp_path):
    """A path the user typed that does not exist is a ConfigError (exit 2) raised by
    discovery, before any model loads (issue 11; it used to be a "failed video")."""
    _touch(tmp_path / "real.mp4")
    with pytest.raises(ConfigError, match=r"input .*nope\.mp4 does not exist"):
        discover([tmp_path / "real.mp4", tmp_path / "nope.mp4"])
    with pytest.raises(ConfigError, match=r"input .*nodir does not exist"):
        discover([tmp_path / "nodir"])
    # A broken link exists (as a link): an item the reader fails with its reason.
    (tmp_path / "broken.mp4").symlink_to(tmp_path / "gone.mp4")
    assert _names(discover([tmp_path / "broken.mp4"])) == ["broken.mp4"]


def test_unusable_arguments(tmp_path):
    with pytest.raises(ConfigError):
        discover([])
    with pytest.raises(ConfigError):
        discover([""])
    with pytest.raises(ConfigError, match="list file"):
        discover([tmp_path / "missing.txt"])


def test_list_file(dataset, tmp_path):
    outside = _touch(tmp_path / "elsewhere" / "x.mp4")
    lst = dataset / "split.txt"
    lst.write_text(
        "# test split\n"
        "\n"
        "Train/002.mp4\n"
        "  Train/010  \n"          # bare name: found by extension
        "frames/vid02\n"
        "Test\\sub\\003.webm\n"  # written on Windows
        f"{outside}\n"
    )
    items = discover([lst])
    by_name = {str(i.name): i.source for i in items}
    assert sorted(by_name) == [
        "Test/sub/003.webm", "Train/002.mp4", "Train/010.avi", "frames/vid02", "x.mp4",
    ]
    assert by_name["x.mp4"] == outside


def test_list_entries_that_do_not_exist_are_usage_errors(dataset, tmp_path):
    """Missing entries are named (a few), with the folder they were resolved against;
    when none resolves the message points to --root (issue 11)."""
    lst = dataset / "split.txt"
    lst.write_text("Train/002.mp4\nTrain/missing.mp4\nTest/001\n")  # 001.MKV: case differs
    with pytest.raises(ConfigError) as err:
        discover([lst])
    msg = str(err.value)
    assert "2 of 3 entries do not exist" in msg
    assert "'Train/missing.mp4'" in msg and "'Test/001'" in msg
    assert f"list's own folder {dataset}" in msg and "--root" not in msg
    # A list written relative to the dataset folder, kept elsewhere: nothing resolves.
    moved = tmp_path / "lists" / "split.txt"
    moved.parent.mkdir()
    moved.write_text("Train/002.mp4\nTrain/010.avi\n")
    with pytest.raises(ConfigError, match=r"2 of 2 entries .* pass --root"):
        discover([moved])
    assert _names(discover([moved], root=dataset)) == ["Train/002.mp4", "Train/010.avi"]
    with pytest.raises(ConfigError, match=r"the --root folder .*is --root the folder"):
        discover([moved], root=tmp_path)
    # Only the first five are named.
    moved.write_text("".join(f"m{k}.mp4\n" for k in range(8)))
    with pytest.raises(ConfigError, match=r"'m4\.mp4' and 3 more"):
        discover([moved])


def test_list_file_with_root_and_folder_entries(dataset, tmp_path):
    lst = tmp_path / "lists" / "all.txt"
    lst.parent.mkdir()
    lst.write_text("Train\nframes\n")
    items = discover([lst], root=dataset)
    assert _names(items) == ["Train/002.mp4", "Train/010.avi", "frames/vid01", "frames/vid02"]


def test_bare_names_found_by_extension(tmp_path):
    _touch(tmp_path / "v" / "01_0014.avi")
    (tmp_path / "v" / "test.txt").write_text("01_0014\n")
    items = discover([tmp_path / "v" / "test.txt"])
    assert _names(items) == ["01_0014.avi"]
    assert items[0].source.exists()


def test_dot_dot_never_escapes(tmp_path):
    _touch(tmp_path / "a" / "x.mp4")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "l.txt").write_text("../a/x.mp4\n")
    items = discover([tmp_path / "b" / "l.txt"])
    assert _names(items) == ["x.mp4"]
    (tmp_path / "b" / "l2.txt").write_text("../../a/x.mp4\n")
    (tmp_path / "b" / "deep").mkdir()
    items = discover([tmp_path / "b" / "l2.txt"], root=tmp_path / "b" / "deep")
    name = items[0].name
    assert not name.is_absolute() and ".." not in name.parts


def test_duplicates_removed(dataset):
    via_link = dataset.parent / "link.mp4"
    via_link.symlink_to(dataset / "Train" / "002.mp4")
    items = discover([dataset, dataset / "Train" / "002.mp4", via_link, dataset])
    assert _names(items).count("Train/002.mp4") == 1
    assert "002.mp4" not in _names(items) and "link.mp4" not in _names(items)


def test_same_names_from_different_folders(tmp_path):
    for d in ("A", "B"):
        _touch(tmp_path / d / "Train" / "001.mp4")
    assert _names(discover([tmp_path / "A", tmp_path / "B"])) == [
        "A/Train/001.mp4", "B/Train/001.mp4"
    ]
    assert _names(discover([tmp_path / "B" / "Train" / "001.mp4",
                            tmp_path / "A" / "Train" / "001.mp4"])) == [
        "A/Train/001.mp4", "B/Train/001.mp4"  # "Train/" alone would still collide
    ]


def test_collision_needs_deeper_prefix(tmp_path):
    a = _touch(tmp_path / "x" / "cam" / "001.mp4")
    b = _touch(tmp_path / "y" / "cam" / "001.mp4")
    assert _names(discover([a, b])) == ["x/cam/001.mp4", "y/cam/001.mp4"]


def test_same_stem_in_one_folder(tmp_path):
    _touch(tmp_path / "v" / "001.avi")
    _touch(tmp_path / "v" / "001.mp4")
    _touch(tmp_path / "v" / "001.MP4")
    items = discover([tmp_path / "v"])
    # Names are the real files (the manifest used to call the second "001~2.avi", a
    # file that does not exist).  Their outputs keep the extension, so they say where
    # they came from; 001.MP4 and 001.mp4 differ in case only, so the second in
    # byte order (upper case first) gets ~2.
    assert _names(items) == ["001.MP4", "001.avi", "001.mp4"]
    assert all(i.source.name == str(i.name) for i in items)
    assert [str(output_stem(i)) for i in items] == ["001.MP4", "001.avi", "001.mp4~2"]
    # Items that do not collide keep extension-free output stems.
    _touch(tmp_path / "v" / "002.mp4")
    assert output_stem(discover([tmp_path / "v" / "002.mp4"])[0]) == PurePosixPath("002")


def test_x_avi_and_x_mp4_outputs(tmp_path):
    """The issue's example: x.avi and x.mp4 in one folder -> x.avi.npy and x.mp4.npy."""
    from vadfeat.store.sinks.npy import output_paths

    _touch(tmp_path / "v" / "x.avi")
    _touch(tmp_path / "v" / "x.mp4")
    items = discover([tmp_path / "v"])
    assert [(str(i.name), i.source.name) for i in items] == [("x.avi", "x.avi"), ("x.mp4", "x.mp4")]
    outs = [output_paths(tmp_path / "o", output_stem(i), layout="flat").features[0].name
            for i in items]
    assert outs == ["x.avi.npy", "x.mp4.npy"]


def test_frame_folder_and_video_with_same_stem(tmp_path):
    _touch(tmp_path / "v" / "clip.mp4")
    _frames(tmp_path / "v" / "clip")
    items = discover([tmp_path / "v"])
    assert _names(items) == ["clip", "clip.mp4"]
    assert [str(output_stem(i)) for i in items] == ["clip", "clip.mp4"]


def test_order_is_deterministic(dataset, tmp_path):
    _touch(tmp_path / "z" / "a.mp4")
    one = discover([dataset, tmp_path / "z"])
    two = discover([tmp_path / "z", dataset])
    assert one == two


def test_video_item_validates_name(tmp_path):
    with pytest.raises(ValueError):
        VideoItem(tmp_path, PurePosixPath("../x.mp4"))
    with pytest.raises(ValueError):
        VideoItem(tmp_path, PurePosixPath("/abs/x.mp4"))
    assert output_stem(PurePosixPath("a/b.MP4")) == PurePosixPath("a/b")
    assert output_stem(PurePosixPath("frames/vid.01")) == PurePosixPath("frames/vid.01")


def test_symlink_loop_is_not_followed_forever(tmp_path):
    _touch(tmp_path / "d" / "a.mp4")
    os.symlink(tmp_path / "d", tmp_path / "d" / "loop")
    assert _names(discover([tmp_path / "d"])) == ["a.mp4"]


def test_unlistable_folders(tmp_path, monkeypatch):
    """A sub-folder that cannot be listed becomes an item (so the run names it as failed
    instead of losing what it holds); the folder the user named is a usage error.
    Listing is refused with a patch: root, who runs CI here, ignores permissions."""
    _touch(tmp_path / "d" / "a.mp4")
    _touch(tmp_path / "d" / "locked" / "b.mp4")
    real = Path.iterdir

    def iterdir(self):
        if self.name == "locked" or (self.name == "d" and refuse_top):
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    refuse_top = False
    assert _names(discover([tmp_path / "d"])) == ["a.mp4", "locked"]
    refuse_top = True
    with pytest.raises(ConfigError, match=r"cannot list folder .*Permission denied"):
        discover([tmp_path / "d"])


# --------------------------------------------------------------------------- issue 11


def test_nul_and_overlong_list_entries_fail_alone(tmp_path):
    """A list line with a NUL byte (a traceback before) and a 5,000-character entry
    ("File name too long" stopped the run) are items that fail with their reason; the
    other entries are untouched."""
    _touch(tmp_path / "good.mp4")
    long_entry = "x" * 5000 + ".mp4"
    (tmp_path / "l.txt").write_text(f"good.mp4\nb\0c.mp4\n{long_entry}\n")
    items = {str(i.name)[:20]: i for i in discover([tmp_path / "l.txt"])}
    assert sorted(items) == ["b\ufffdc.mp4", "good.mp4", "x" * 20]
    assert items["good.mp4"].error is None
    assert items["b\ufffdc.mp4"].error == "l.txt line 2: the name holds a NUL byte, which no " \
                                          "file name can hold"
    assert items["x" * 20].error == "l.txt line 3: file name too long for the file system"
    # Found by fuzzing (tests/test_fuzz_inputs.py at 100x): a NUL in a folder part
    # reached a name through the collision prefix ("\0../\ufffd").
    (tmp_path / "l2.txt").write_text("../\0../\0\n\0\n")
    names = [i.name for i in discover([tmp_path / "l2.txt"])]
    assert len(names) == 2 and not any("\0" in str(n) or ".." in n.parts for n in names)


def test_unstatable_symlink_in_folder_fails_alone(tmp_path, monkeypatch):
    """A link under the input folder whose target cannot be examined (``-> /proc/1/cwd``,
    permission denied for a normal user) stopped the run.  It is an item that fails
    with the reason.  Root can stat /proc/1/cwd, so the refusal is patched in."""
    _touch(tmp_path / "d" / "a.mp4")
    os.symlink("/proc/1/cwd", tmp_path / "d" / "cwd")
    real = Path.stat

    def stat(self, *args, **kwargs):
        if self.name == "cwd":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", stat)
    items = discover([tmp_path / "d"])
    assert [(str(i.name), i.error) for i in items] == [
        ("a.mp4", None), ("cwd", "cannot be examined: Permission denied")]


def test_output_name_length_is_checked_at_discovery(tmp_path):
    """Outputs are ``<stem>.npy``/``<stem>__9.npy``/``<stem>.json`` and temporaries
    ``.<stem>.frames.json.vadfeat-tmp.<host>.<pid>``: 1 + 12 + 13 + 64 + 1 + 7 = 98
    bytes reserved, so a stem may have 255 - 98 = 157 bytes."""
    from vadfeat.io.inputs import NAME_MAX, NAME_RESERVE

    assert (NAME_MAX, NAME_RESERVE) == (255, 98)
    fits = _touch(tmp_path / ("a" * 157 + ".mp4"))
    too_long = _touch(tmp_path / ("b" * 158 + ".mp4"))
    wide = _touch(tmp_path / ("é" * 79 + ".mp4"))  # 158 bytes in UTF-8, 79 characters
    items = {i.source: i for i in discover([fits, too_long, wide])}
    assert items[fits.absolute()].error is None
    assert "output name too long" in items[too_long.absolute()].error
    assert "158 bytes" in items[wide.absolute()].error


def test_passed_over_files_are_named_with_reasons(tmp_path):
    """Issue 11: discovery used to skip silently ("no videos or frame folders found",
    exit 0).  Every file or folder it passes over is named with why."""
    from vadfeat.io.inputs import scan

    d = tmp_path / "ds"
    _touch(d / "v" / "a.mp4")
    _touch(d / "v" / "notes.txt")
    _touch(d / "v" / "cover.jpg")        # an image beside a video: not a frame folder
    _touch(d / "gifs" / "001.gif")       # not a format frame folders use
    (d / "empty").mkdir()
    _frames(d / "f", 3)
    synth.write_frame_folder(d / "f", synth.solid_frames(1, (0, 0, 0), width=8, height=8),
                             pattern="thumb.png")
    found = scan([d])
    assert _names(found.items) == ["f", "v/a.mp4"]
    reasons = {p.path.relative_to(d).as_posix(): p.reason for p in found.passed_over}
    assert reasons == {
        "v/notes.txt": "neither a video nor an image file",
        "v/cover.jpg": "image beside videos or sub-folders, so not a frame folder",
        "gifs/001.gif": "neither a video nor an image file",
        "empty": "folder holds no videos or frames",
        "f/thumb.png": "not the frames' naming pattern img_#.jpg",
    }
    lines = found.describe_passed_over()
    assert any(line.startswith("passed over 2 (neither a video nor an image file)")
               for line in lines)


def test_raw_streams_vob_and_tif_folders_are_found(tmp_path):
    """.h264 and .VOB files and a folder of .tif frames (UCSD Ped1/Ped2) used to be
    passed over silently by folder discovery."""
    _touch(tmp_path / "d" / "cam.h264")
    _touch(tmp_path / "d" / "VTS_01_1.VOB")
    synth.write_frame_folder(tmp_path / "d" / "Test001",
                             synth.solid_frames(2, (5, 5, 5), width=8, height=8),
                             pattern="{:03d}.tif")
    items = discover([tmp_path / "d"])
    assert _names(items) == ["Test001", "VTS_01_1.VOB", "cam.h264"]
    assert [str(output_stem(i)) for i in items] == ["Test001", "VTS_01_1", "cam"]
    # An unknown extension is passed over in a folder, but taken when named explicitly.
    odd = _touch(tmp_path / "d" / "recording.dat")
    assert "recording.dat" not in _names(discover([tmp_path / "d"]))
    assert _names(discover([odd])) == ["recording.dat"]


def test_one_list_of_video_extensions():
    from vadfeat.io import video
    from vadfeat.store import reader as features

    assert features.VIDEO_EXTENSIONS is video.VIDEO_EXTENSIONS
    assert {".h264", ".vob", ".y4m", ".mp4"} <= video.VIDEO_EXTENSIONS


# --------------------------------------------------------------------------- issue 20: hangs and walks


@pytest.mark.parametrize("where", ["folder", "list", "argument"])
def test_fifo_named_like_a_video_fails_alone_unopened(tmp_path, where):
    # Opening a FIFO for reading blocks until a writer comes: the run would hang for ever.
    # Discovery looks at the file type only (stat), so this test cannot block.
    ds = tmp_path / "ds"
    _touch(ds / "a.mp4")
    os.mkfifo(ds / "pipe.mp4")
    if where == "folder":
        inputs = [ds]
    elif where == "list":
        (tmp_path / "l.txt").write_text("a.mp4\npipe.mp4\n")
        inputs = [tmp_path / "l.txt"]
        items = discover(inputs, root=ds)
    else:
        inputs = [ds / "a.mp4", ds / "pipe.mp4"]
    if where != "list":
        items = discover(inputs)
    by_name = {str(i.name): i for i in items}
    assert by_name["a.mp4"].error is None
    assert by_name["pipe.mp4"].error is not None
    assert "not a regular file: named pipe (FIFO)" in by_name["pipe.mp4"].error


def test_socket_and_character_device_fail_alone(tmp_path):
    import socket

    ds = tmp_path / "ds"
    _touch(ds / "a.mp4")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(ds / "s.mp4"))
        items = discover([ds, "/dev/null"])
    finally:
        sock.close()
    by_name = {str(i.name): i for i in items}
    assert "not a regular file: socket" in by_name["s.mp4"].error
    assert "not a regular file: character device" in by_name["null"].error
    assert by_name["a.mp4"].error is None


def test_open_video_refuses_a_fifo_without_opening_it(tmp_path):
    from stress.fault_corpus import call_with_limit
    from vadfeat.errors import VideoOpenError
    from vadfeat.io.video import open_video, probe

    fifo = tmp_path / "p.mp4"
    os.mkfifo(fifo)
    for call in (open_video, probe):
        # The limit only turns a hang (opening the pipe) into a failure; a correct reader
        # refuses at once, from stat alone.
        try:
            with pytest.raises(VideoOpenError, match=r"p\.mp4: not a regular file: named pipe"):
                call_with_limit(60, call, fifo)
        finally:  # a reader stuck in open() is released by a writer coming and going
            with contextlib.suppress(OSError):  # ENXIO: no reader waiting, nothing to release
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


@pytest.mark.parametrize("text", ["a.mp4\n/\n", "a.mp4\r/\r", "# all\r\n/\r\n", "a.mp4\n  /  \n",
                                  "a.mp4\n/..\n"])
def test_a_list_line_naming_the_root_folder_is_refused(tmp_path, text):
    ds = tmp_path / "ds"
    _touch(ds / "a.mp4")
    lst = ds / "l.txt"
    lst.write_bytes(text.encode())
    with pytest.raises(ConfigError, match=r"l\.txt line 2: '/(\.\.)?' is the file-system root"):
        discover([lst])


def test_a_list_line_naming_home_or_above_is_refused(tmp_path, monkeypatch):
    home = tmp_path / "home" / "me"
    _touch(home / "data" / "a.mp4")
    monkeypatch.setenv("HOME", str(home))
    lst = home / "data" / "l.txt"
    for entry in (str(home), str(home.parent), "../.."):
        lst.write_text(f"a.mp4\n{entry}\n")
        with pytest.raises(ConfigError, match=r"l\.txt line 2: .* (home folder|holds the home)"):
            discover([lst])
    # A folder below home is a dataset folder: searched.
    lst.write_text(f"{home / 'data'}\n")
    assert _names(discover([lst])) == ["data/a.mp4"]


def test_carriage_return_lists_are_split_into_lines(tmp_path):
    ds = tmp_path / "ds"
    for name in ("a.mp4", "b.mp4", "c.mp4"):
        _touch(ds / name)
    for sep in ("\r", "\r\n", "\n"):
        (ds / "l.txt").write_text(sep.join(["a.mp4", "# skipped", "b.mp4", "", "c.mp4"]) + sep,
                                  newline="")
        assert _names(discover([ds / "l.txt"])) == ["a.mp4", "b.mp4", "c.mp4"], repr(sep)
