"""The data scripts run end to end: the UCI converter and the AV-digits
generator."""

import json

import numpy as np

from keras_gblend.datasets import uci_multifeature


def _run(run_script, script, *flags):
    return run_script("scripts", script, *flags)


def _write_csvs(folder, shipped, labels):
    for view in ("fou", "fac", "kar", "pix", "zer", "mor"):
        features = shipped[view]
        header = ",".join([f"f{i}" for i in range(features.shape[1])] + ["y"])
        table = np.column_stack([features, labels])
        np.savetxt(folder / f"mfeat-{view}.csv", table, delimiter=",",
                   header=header, comments="", fmt="%.9g")


def test_convert_uci_mfeat_rebuilds_the_shipped_file(tmp_path, run_script):
    shipped = np.load(uci_multifeature._PATH)
    _write_csvs(tmp_path, shipped, shipped["labels"])
    out = tmp_path / "rebuilt.npz"
    result = _run(run_script, "convert_uci_mfeat.py",
                  f"--source_dir={tmp_path}",
                  f"--out={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    rebuilt = np.load(out)
    assert sorted(rebuilt.files) == sorted(shipped.files)
    for name in shipped.files:
        assert rebuilt[name].dtype == shipped[name].dtype
        np.testing.assert_array_equal(rebuilt[name], shipped[name])


def test_convert_uci_mfeat_refuses_views_with_different_labels(
        tmp_path, run_script):
    shipped = np.load(uci_multifeature._PATH)
    _write_csvs(tmp_path, shipped, shipped["labels"])
    table = np.loadtxt(tmp_path / "mfeat-zer.csv", delimiter=",", skiprows=1)
    table[0, -1] = (table[0, -1] + 1) % 10
    np.savetxt(tmp_path / "mfeat-zer.csv", table, delimiter=",",
               header="h", comments="", fmt="%.9g")
    result = _run(run_script, "convert_uci_mfeat.py",
                  f"--source_dir={tmp_path}",
                  f"--out={tmp_path / 'x.npz'}")
    assert result.returncode != 0
    assert "Labels of view 'zer'" in result.stderr
    assert not (tmp_path / "x.npz").exists()


def test_make_av_digits_script_writes_a_balanced_noisy_set(
        tmp_path, run_script):
    out = tmp_path / "avd"
    result = _run(run_script, "make_av_digits.py", f"--out={out}", "--n=20",
                  "--image_noise=0.5", "--workers=1")
    assert result.returncode == 0, result.stderr[-3000:]
    meta = json.load(open(out / "meta.json"))
    assert (meta["n"], meta["image_noise"], meta["audio_noise"]) == (20, 0.5, 0.0)
    rows = [line.split(",") for split in ("train", "test")
            for line in open(out / f"{split}.csv")]
    assert np.bincount([int(label) for _, label in rows]).tolist() == [2] * 10
    for clip, _ in rows:
        assert (out / "AudioWAV" / f"{clip}.wav").is_file()
        assert (out / "Image-01-FPS" / clip / "000.jpg").is_file()

    too_few = _run(run_script, "make_av_digits.py",
                   f"--out={tmp_path / 'none'}", "--n=5")
    assert too_few.returncode != 0 and "--n" in too_few.stderr
    assert not (tmp_path / "none").exists()
