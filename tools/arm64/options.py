"""What the emulated-ARM check runs on: :class:`CheckOptions` (the command line's settings)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edge_runtime.paths import shared_dir

from .build import default_arm64_dir
from .settings import DEFAULT_PHOTOS, PROFILES


@dataclass
class CheckOptions:
    """What the check runs on (see ``--help``)."""

    model: Path
    workdir: Path
    summary: Path | None = None
    shared: Path = field(default_factory=shared_dir)
    arm64_dir: Path = field(default_factory=default_arm64_dir)
    photos: tuple[str, ...] = DEFAULT_PHOTOS
    frames: int = 5
    fer_per_label: int = 3
    threads: int = 1
    profiles: tuple[str, ...] = tuple(PROFILES)
    jobs: int = 2

    def __post_init__(self) -> None:
        # every side runs in its own folder: paths must be absolute
        self.model, self.workdir, self.shared, self.arm64_dir = (
            Path(p).resolve() for p in (self.model, self.workdir, self.shared, self.arm64_dir))
        self.summary = None if self.summary is None else Path(self.summary).resolve()
