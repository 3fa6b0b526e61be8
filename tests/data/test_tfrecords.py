import os

import pytest

import keras_gblend as kg
from keras_gblend import data as kd


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
