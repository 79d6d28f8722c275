"""Input discovery: files, folders, lists, names that never collide or escape."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import pytest

from vadfeat import synth
from vadfeat.errors import ConfigError
from vadfeat.inputs import VideoItem, discover, output_stem


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


def test_missing_paths_are_items_not_errors(tmp_path):
    items = discover([tmp_path / "nope.mp4", tmp_path / "nodir"])
    assert _names(items) == ["nodir", "nope.mp4"]


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
        "  Test/001  \n"          # bare name: found by extension (case-sensitive file system)
        "frames/vid02\n"
        "Test\\sub\\003.webm\n"  # written on Windows
        f"{outside}\n"
        "Train/missing.mp4\n"
    )
    items = discover([lst])
    by_name = {str(i.name): i.source for i in items}
    assert sorted(by_name) == [
        "Test/001", "Test/sub/003.webm", "Train/002.mp4", "Train/missing.mp4", "frames/vid02",
        "x.mp4",
    ]
    assert by_name["x.mp4"] == outside
    assert not by_name["Train/missing.mp4"].exists()
    # Bare name with no matching extension ("Test/001" vs "001.MKV") stays as given.
    assert not by_name["Test/001"].exists()


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
    # Numbered in source-path order (byte order: upper case first).
    assert _names(items) == ["001.MP4", "001~2.avi", "001~3.mp4"]
    stems = {str(output_stem(i.name)).casefold() for i in items}
    assert len(stems) == 3


def test_frame_folder_and_video_with_same_stem(tmp_path):
    _touch(tmp_path / "v" / "clip.mp4")
    _frames(tmp_path / "v" / "clip")
    names = _names(discover([tmp_path / "v"]))
    assert len({str(output_stem(PurePosixPath(n))) for n in names}) == 2


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
