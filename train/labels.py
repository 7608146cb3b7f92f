"""FER2013's class names and the selection of classes a model is trained on.

The label order of a trained model is the order chosen here; it is recorded in the
model card at training time and read from the card everywhere else.
"""

from __future__ import annotations

# FER2013's emotion codes, in the order of the original fer2013.csv "emotion" column.
FER2013_CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
# Our users' 4-class task.
DEFAULT_CLASSES: tuple[str, ...] = ("happy", "neutral", "sad", "surprise")


def parse_classes(spec: str) -> tuple[str, ...]:
    """Parse ``--classes``: ``all`` (the 7 FER2013 classes) or a comma-separated list of names.

    The result is in a fixed order (sorted by name) so the same selection always gives
    the same label order, whatever order the user typed.
    """
    if spec.strip().lower() == "all":
        return tuple(sorted(FER2013_CLASSES))
    names = [n.strip().lower() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in FER2013_CLASSES]
    if unknown:
        raise ValueError(f"unknown class name(s) {', '.join(unknown)} in --classes; "
                         f"choose from {', '.join(FER2013_CLASSES)} or 'all'")
    if len(set(names)) < 2:
        raise ValueError("--classes needs at least two distinct class names")
    return tuple(sorted(set(names)))
