"""FER2013's class names and the selection of classes a model is trained on.

The label order of a trained model is the order chosen here; it is recorded in the
model card at training time and read from the card everywhere else.
"""

from __future__ import annotations

from edge_runtime.labelled_faces.loading import FER2013_CLASSES

# Classes FER+ votes add: an image can be labelled contempt only by its votes (--labels ferplus).
FERPLUS_ONLY_CLASSES: tuple[str, ...] = ("contempt",)
# Our users' 4-class task.
DEFAULT_CLASSES: tuple[str, ...] = ("happy", "neutral", "sad", "surprise")


def parse_classes(spec: str, allowed: tuple[str, ...] = FER2013_CLASSES) -> tuple[str, ...]:
    """Parse ``--classes``: ``all`` (the 7 FER2013 classes) or a comma-separated list of names.

    The result is in a fixed order (sorted by name) so the same selection always gives
    the same label order, whatever order the user typed.
    """
    if spec.strip().lower() == "all":
        return tuple(sorted(FER2013_CLASSES))
    names = [n.strip().lower() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in allowed]
    if unknown:
        hint = " (contempt needs --labels ferplus)" if set(unknown) <= set(FERPLUS_ONLY_CLASSES) else ""
        raise ValueError(f"unknown class name(s) {', '.join(unknown)} in --classes{hint}; "
                         f"choose from {', '.join(allowed)} or 'all'")
    if len(set(names)) < 2:
        raise ValueError("--classes needs at least two distinct class names")
    return tuple(sorted(set(names)))
