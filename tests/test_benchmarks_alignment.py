"""benchmarks.alignment on a few real faces: the figures it writes, and one error line for bad input."""

from __future__ import annotations

import json

import numpy as np

from benchmarks import alignment


def test_paired_counts_faces_each_crop_alone_gets_right():
    labels = np.array([0, 0, 1, 1, -1, 2])
    unaligned = np.array([0, 1, 1, 0, 0, 2])
    aligned = np.array([0, 0, 0, 1, 1, 2])
    assert alignment.paired(unaligned, aligned, labels) == {"gained": 2, "lost": 1, "p_value": 1.0}
    ten = np.zeros(10, dtype=int)
    assert alignment.paired(ten + 1, ten, ten) == {"gained": 10, "lost": 0, "p_value": 0.002}  # 2 / 2**10


def test_alignment_benchmark_writes_both_modes(shared_dir, tmp_path, capsys):
    out = tmp_path / "alignment.json"
    assert alignment.main(["--limit", "12", "--angles", "0,20", "--detector", "short-range", "--faces-limit", "3",
                           "--video-step", "100", "--threads", "1", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert [row["angle"] for row in figures["accuracy"]] == [0.0, 20.0]
    for row in figures["accuracy"]:
        assert row["found"] > 0 and set(row["accuracy_aligned"]) >= {"fer2013"}
        split = row["paired"]["fer2013"]
        assert split["gained"] + split["lost"] <= row["found"] and 0 < split["p_value"] <= 1
    assert row["tilt_mean"] < -10  # the canvas turned 20 degrees counter-clockwise: the eye line is seen tilted
    assert {row["set"] for row in figures["stability"]} == {"photos", "unlabelled_faces", "video"}
    photos = next(row for row in figures["stability"] if row["set"] == "photos")
    assert photos["pairs"] > 0 and 0 <= photos["same_label_aligned"] <= 1 and photos["crop_ms_aligned"] > 0
    assert 0 <= photos["eye_angle_error_deg"] < 10  # the keypoints follow a 10 degree turn of the photo
    assert "| short-range | +20 |" in capsys.readouterr().out


def test_alignment_benchmark_rejects_a_bad_video_step(shared_dir, capsys):
    assert alignment.main(["--video-step", "0", "--no-media"]) == 2
    assert capsys.readouterr().err.strip() == "python -m benchmarks.alignment: error: --video-step must be >= 1 (got 0)"
