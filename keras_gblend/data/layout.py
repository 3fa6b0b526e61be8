"""Directory + CSV layouts of audio-visual datasets, read and validated.

The layout (the OGM-GE reference's CREMA-D layout; Kinetics-Sounds, AVE and
VGGSound fit it once their audio is WAV and frames are extracted):

```
<root>/
  <audio_dir>/<clip>.wav            e.g. AudioWAV/1001_DFA_ANG_XX.wav
  <frames_dir>/<clip>/<frame>.jpg   e.g. Image-01-FPS/1001_DFA_ANG_XX/0001.jpg
  <split>.csv                       rows "clip,label", e.g. train.csv, test.csv
```

Frames of a clip are taken in file-name order; JPEG, PNG, BMP and GIF are
accepted. The CSV has no header (a first row `clip,label` is skipped). Every
problem names the CSV row and the file: a row with no clip, a label that is
not a known class, a missing or empty audio file or frame folder, a file
whose header is not WAV or a known image format.
"""

import csv
import dataclasses
import os
from typing import Dict, List, Optional, Sequence, Tuple

from absl import logging

ON_ERROR = ("raise", "skip")
FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
CREMAD_CLASSES = ("NEU", "HAP", "SAD", "FEA", "DIS", "ANG")
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM", b"GIF8")


class MediaError(ValueError):
    """A dataset row whose media are missing, empty or corrupt."""


@dataclasses.dataclass(frozen=True)
class AVLayout:
    """Where a dataset's files are.

    Attributes:
        root: dataset folder.
        audio_dir: audio folder under `root`.
        frames_dir: frames folder under `root` (one sub-folder per clip).
        audio_extension: audio file suffix.
        classes: class names in label order; default: the sorted labels of
            the first split read (pass them to keep ids stable).
    """

    root: str
    audio_dir: str = "AudioWAV"
    frames_dir: str = "Image-01-FPS"
    audio_extension: str = ".wav"
    classes: Optional[Tuple[str, ...]] = None


@dataclasses.dataclass
class ClipList:
    """Validated clips of one split.

    Attributes:
        audio_paths: audio file per clip.
        frame_paths: sorted frame files per clip.
        labels: int class ids.
        classes: class names (label order).
        skipped: `(csv_row_number, reason)` of rows dropped under
            `on_error="skip"`.
    """

    audio_paths: List[str]
    frame_paths: List[List[str]]
    labels: List[int]
    classes: Tuple[str, ...]
    skipped: List[Tuple[int, str]]

    def __len__(self) -> int:
        return len(self.labels)


def _check_audio(path: str, where: str) -> None:
    if not os.path.isfile(path):
        raise MediaError(f"{where}: audio file {path} does not exist.")
    if os.path.getsize(path) == 0:
        raise MediaError(f"{where}: audio file {path} is empty.")
    if path.lower().endswith(".wav"):
        with open(path, "rb") as handle:
            header = handle.read(12)
        if header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            raise MediaError(
                f"{where}: audio file {path} is corrupt (no RIFF/WAVE header)."
            )


def _check_frames(folder: str, where: str) -> List[str]:
    if not os.path.isdir(folder):
        raise MediaError(f"{where}: frame folder {folder} does not exist.")
    names = sorted(
        n for n in os.listdir(folder) if n.lower().endswith(FRAME_EXTENSIONS)
    )
    if not names:
        raise MediaError(f"{where}: frame folder {folder} has no images.")
    paths = [os.path.join(folder, n) for n in names]
    for path in paths:
        if os.path.getsize(path) == 0:
            raise MediaError(f"{where}: frame {path} is empty.")
        with open(path, "rb") as handle:
            header = handle.read(8)
        if not any(header.startswith(m) for m in _IMAGE_MAGIC):
            raise MediaError(
                f"{where}: frame {path} is corrupt (not a JPEG/PNG/BMP/GIF)."
            )
    return paths


def read_rows(csv_path: str) -> List[Tuple[int, List[str]]]:
    """`(row_number, fields)` of a `clip,label` CSV (1-based rows)."""
    if not os.path.isfile(csv_path):
        raise FileNotFoundError(f"Split list {csv_path} does not exist.")
    with open(csv_path, encoding="utf-8-sig", newline="") as handle:
        rows = [
            (number, [field.strip() for field in row])
            for number, row in enumerate(csv.reader(handle), start=1)
            if row and any(field.strip() for field in row)
        ]
    if rows and [f.lower() for f in rows[0][1][:2]] == ["clip", "label"]:
        rows = rows[1:]
    return rows


def read_split(
    layout: AVLayout,
    split: str,
    on_error: str = "raise",
    classes: Optional[Sequence[str]] = None,
) -> ClipList:
    """Reads and validates `<root>/<split>.csv` and the files it names.

    Args:
        layout: the dataset's `AVLayout`.
        split: CSV name without `.csv` (`"train"`, `"test"`).
        on_error: `"raise"` (default): the first bad row raises a
            `MediaError` (or `ValueError` for a bad label) naming the row and
            file; `"skip"`: bad rows are dropped, counted in `skipped` and
            logged.
        classes: class names; default `layout.classes`, else the sorted
            labels found in this CSV.

    Returns:
        A `ClipList`.
    """
    if on_error not in ON_ERROR:
        raise ValueError(f"`on_error` must be one of {ON_ERROR}, got {on_error!r}.")
    csv_path = os.path.join(layout.root, f"{split}.csv")
    rows = read_rows(csv_path)
    classes = tuple(classes or layout.classes or sorted(
        {fields[1] for _, fields in rows if len(fields) > 1 and fields[1]}
    ))
    index: Dict[str, int] = {name: i for i, name in enumerate(classes)}
    result = ClipList([], [], [], classes, [])
    for number, fields in rows:
        where = f"{csv_path} row {number}"
        try:
            if len(fields) < 2 or not fields[0]:
                raise MediaError(f"{where}: names no clip ({fields}).")
            clip, label = fields[0], fields[1]
            if label not in index:
                raise MediaError(
                    f"{where}: label {label!r} is not one of the classes "
                    f"{list(classes)}."
                )
            audio = os.path.join(
                layout.root, layout.audio_dir, clip + layout.audio_extension
            )
            _check_audio(audio, where)
            frames = _check_frames(
                os.path.join(layout.root, layout.frames_dir, clip), where
            )
        except MediaError as error:
            if on_error == "raise":
                raise
            result.skipped.append((number, str(error)))
            continue
        result.audio_paths.append(audio)
        result.frame_paths.append(frames)
        result.labels.append(index[label])
    if result.skipped:
        logging.warning(
            "Skipped %d of %d rows of %s (first: %s)",
            len(result.skipped), len(rows), csv_path, result.skipped[0][1],
        )
    if not result.labels:
        raise MediaError(f"{csv_path} lists no usable clip.")
    return result


def _decode_problem(audio: str, frames: Sequence[str]) -> Optional[str]:
    """Why a clip's files do not decode in full (None if they do)."""
    import tensorflow as tf  # noqa: PLC0415 - only this check needs TF

    for path in [audio, *frames]:
        try:
            contents = tf.io.read_file(path)
            if path == audio:
                if path.lower().endswith(".wav"):
                    tf.audio.decode_wav(contents)
                else:
                    from keras_gblend.data import audio as audio_lib  # noqa

                    audio_lib.decode_audio_file(path)
            else:
                tf.io.decode_image(contents, channels=3,
                                   expand_animations=False)
        except Exception as error:  # noqa: BLE001 - any failure: report it
            lines = str(error).strip().splitlines()
            kind = "audio file" if path == audio else "frame"
            return (f"{kind} {path} does not decode ("
                    f"{lines[-1] if lines else type(error).__name__})")
    return None


def check_decodable(clips: ClipList, on_error: str = "raise") -> ClipList:
    """Decodes every file of `clips` in full: a file with a valid header
    but truncated or corrupt data passes `read_split`'s header checks and
    would fail in the middle of training, naming no file.

    Args:
        clips: a `ClipList` from `read_split`.
        on_error: `"raise"`: a `MediaError` naming the first such file;
            `"skip"`: drop those clips (counted in `skipped`, logged).

    Returns:
        The clips that decode.
    """
    if on_error not in ON_ERROR:
        raise ValueError(f"`on_error` must be one of {ON_ERROR}, got {on_error!r}.")
    kept = ClipList([], [], [], clips.classes, list(clips.skipped))
    for index, (audio, frames, label) in enumerate(
            zip(clips.audio_paths, clips.frame_paths, clips.labels)):
        problem = _decode_problem(audio, frames)
        if problem is not None:
            if on_error == "raise":
                raise MediaError(f"Clip {index} of the split: {problem}.")
            kept.skipped.append((index, problem))
            continue
        kept.audio_paths.append(audio)
        kept.frame_paths.append(frames)
        kept.labels.append(label)
    if len(kept.skipped) > len(clips.skipped):
        logging.warning("Skipped %d clips that do not decode (first: %s)",
                        len(kept.skipped) - len(clips.skipped),
                        kept.skipped[len(clips.skipped)][1])
    return kept
