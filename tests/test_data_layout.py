import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

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


def test_pipeline_yields_batches_from_files(av_digits_dir):
    clips = kd.read_split(kg.datasets.av_digits.layout(av_digits_dir), "test")
    dataset = kd.preprocess(
        kd.clip_bytes_dataset(clips), kg.datasets.av_digits.AUDIO,
        kg.datasets.av_digits.FRAMES, batch_size=8,
    )
    (x, y), = dataset.take(1)
    assert x["audio"].shape == (8, 101, 64, 1)
    assert x["visual"].shape == (8, 3, 32, 32, 3)
    assert y.numpy().tolist() == clips.labels[:8]
    # The audio equals a direct decode of the file.
    samples, rate = kd.audio.decode_wav(tf.io.read_file(clips.audio_paths[0]))
    expected = kd.audio.waveform_to_spectrogram(samples, rate, kg.datasets.av_digits.AUDIO)
    np.testing.assert_allclose(x["audio"][0, ..., 0].numpy(), expected.numpy(), atol=1e-5)


def test_tfrecord_round_trip_is_identical(av_digits_dir, tmp_path):
    clips = kd.read_split(kg.datasets.av_digits.layout(av_digits_dir), "test")
    paths = kd.write_tfrecords(clips, str(tmp_path), prefix="test", num_shards=3)
    assert len(paths) == 3 and not list(tmp_path.glob("*.tmp"))
    records = list(kd.read_tfrecords(str(tmp_path / "test-*.tfrecord")))
    by_clip = {r["clip"].numpy().decode(): r for r in records}
    assert len(by_clip) == len(clips)
    for audio, frames, label in zip(clips.audio_paths, clips.frame_paths, clips.labels):
        record = by_clip[os.path.basename(audio)[:-4]]
        assert record["audio_bytes"].numpy() == open(audio, "rb").read()
        assert [b for b in record["frame_bytes"].numpy()] == [open(f, "rb").read() for f in frames]
        assert int(record["label"]) == label
    with pytest.raises(FileNotFoundError):
        kd.read_tfrecords(str(tmp_path / "nothing-*.tfrecord"))
