import os
import shutil

import pytest

import keras_gblend as kg
from keras_gblend import data as kd


def _copy(src, tmp_path, rows=12):
    """A small copy of the generated layout with its first `rows` rows."""
    dst = tmp_path / "ds"
    shutil.copytree(src, dst)
    lines = open(dst / "train.csv").read().splitlines()[:rows]
    (dst / "train.csv").write_text("\n".join(lines) + "\n")
    return dst, [l.split(",") for l in lines]


def test_read_split_lists_files_and_labels(av_digits_dir):
    clips = kd.read_split(kg.datasets.av_digits.layout(av_digits_dir), "train")
    rows = [l.split(",") for l in open(os.path.join(av_digits_dir, "train.csv"))]
    assert len(clips) == len(rows) == 160
    assert clips.labels[:5] == [int(r[1]) for r in rows[:5]]
    assert clips.audio_paths[0].endswith(f"AudioWAV/{rows[0][0]}.wav")
    assert [os.path.basename(p) for p in clips.frame_paths[0]] == ["000.jpg", "001.jpg", "002.jpg"]


@pytest.mark.parametrize(
    "damage, message",
    [
        ("missing_audio", "does not exist"),
        ("empty_audio", "is empty"),
        ("corrupt_audio", "corrupt"),
        ("corrupt_frame", "corrupt"),
        ("no_frames", "has no images"),
        ("bad_label", "label 'eleven' is not one of"),
        ("no_clip", "names no clip"),
    ],
)
def test_bad_rows_raise_naming_row_and_file_or_are_skipped(
    av_digits_dir, tmp_path, damage, message
):
    root, rows = _copy(av_digits_dir, tmp_path)
    clip = rows[3][0]
    audio = root / "AudioWAV" / f"{clip}.wav"
    frame_dir = root / "Image-01-FPS" / clip
    if damage == "missing_audio":
        audio.unlink()
    elif damage == "empty_audio":
        audio.write_bytes(b"")
    elif damage == "corrupt_audio":
        audio.write_bytes(b"garbage" * 10)
    elif damage == "corrupt_frame":
        (frame_dir / "001.jpg").write_bytes(b"not an image")
    elif damage == "no_frames":
        shutil.rmtree(frame_dir)
        frame_dir.mkdir()
    else:
        rows[3] = [clip, "eleven"] if damage == "bad_label" else ["", "3"]
        (root / "train.csv").write_text("\n".join(",".join(r) for r in rows) + "\n")
    layout = kg.datasets.av_digits.layout(str(root))
    with pytest.raises(kd.MediaError, match=message) as error:
        kd.read_split(layout, "train")
    assert "row 4" in str(error.value)
    if damage not in ("bad_label", "no_clip"):
        assert clip in str(error.value)
    skipped = kd.read_split(layout, "train", on_error="skip")
    assert len(skipped) == len(rows) - 1
    assert [number for number, _ in skipped.skipped] == [4]
    # Never a wrong label: the remaining rows keep theirs.
    kept = [r for i, r in enumerate(rows) if i != 3]
    assert skipped.labels == [int(r[1]) for r in kept]
