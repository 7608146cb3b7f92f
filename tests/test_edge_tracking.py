"""IoU tracking: stable ids, new ids for new faces, expiry, EMA smoothing, minimum confidence."""

from __future__ import annotations

import pytest

from edge_runtime import Face, IoUTracker
from edge_runtime.recognition.tracking import iou

LABELS = ("happy", "sad")


def face(box, happy: float) -> Face:
    return Face(box=box, label=None, scores={"happy": happy, "sad": 1 - happy}, detector_score=1.0)


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0


def test_ids_are_stable_while_faces_move_a_little_and_new_faces_get_new_ids():
    tracker = IoUTracker(LABELS)
    a, b = tracker.update([face((0, 0, 50, 50), 0.9), face((200, 0, 50, 50), 0.1)])
    assert (a.track_id, b.track_id) == (1, 2)
    # same faces, listed in the other order, moved by a few pixels; plus a new face
    b2, new, a2 = tracker.update([face((205, 3, 50, 50), 0.1), face((400, 0, 40, 40), 0.5),
                                  face((4, 2, 52, 52), 0.9)])
    assert (a2.track_id, b2.track_id, new.track_id) == (1, 2, 3)


def test_tracks_survive_short_gaps_and_expire_after_max_missed():
    tracker = IoUTracker(LABELS, max_missed=2)
    (first,) = tracker.update([face((0, 0, 50, 50), 0.9)])
    tracker.update([])
    tracker.update([])
    (again,) = tracker.update([face((2, 0, 50, 50), 0.9)])
    assert again.track_id == first.track_id
    for _ in range(3):
        tracker.update([])
    (later,) = tracker.update([face((2, 0, 50, 50), 0.9)])
    assert later.track_id != first.track_id and len(tracker.tracks) == 1


def test_scores_are_smoothed_with_an_ema_per_track():
    tracker = IoUTracker(LABELS, smoothing=0.25)
    tracker.update([face((0, 0, 50, 50), 1.0), face((100, 0, 50, 50), 0.0)])
    a, b = tracker.update([face((0, 0, 50, 50), 0.0), face((100, 0, 50, 50), 1.0)])
    assert a.scores["happy"] == pytest.approx(0.75) and a.label == "happy"
    assert b.scores["happy"] == pytest.approx(0.25) and b.label == "sad"
    assert sum(a.scores.values()) == pytest.approx(1.0)
    (c,) = IoUTracker(LABELS, smoothing=1.0).update([face((0, 0, 5, 5), 0.3)])
    assert c.scores["happy"] == pytest.approx(0.3)  # smoothing 1 = the raw scores


def test_min_confidence_applies_to_the_smoothed_scores():
    tracker = IoUTracker(LABELS, smoothing=0.5, min_confidence=0.7)
    (a,) = tracker.update([face((0, 0, 50, 50), 0.9)])
    (b,) = tracker.update([face((0, 0, 50, 50), 0.3)])  # smoothed 0.6 / 0.4
    assert a.label == "happy" and b.label is None


def test_bad_smoothing_is_refused():
    with pytest.raises(ValueError, match="smoothing"):
        IoUTracker(LABELS, smoothing=0.0)


def test_a_new_scene_key_starts_new_tracks_where_the_same_face_would_have_continued():
    tracker = IoUTracker(LABELS)
    (first,) = tracker.update([face((0, 0, 50, 50), 0.9)], scene=(0, 0))
    (same,) = tracker.update([face((0, 0, 50, 50), 0.1)], scene=(0, 0))
    assert same.track_id == first.track_id and same.scores["happy"] == pytest.approx(0.5)
    (cut,) = tracker.update([face((0, 0, 50, 50), 0.1)], scene=(1, 0))      # e.g. the camera reconnected
    assert cut.track_id != first.track_id and cut.scores["happy"] == pytest.approx(0.1)
    assert len(tracker.tracks) == 1
