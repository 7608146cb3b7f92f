"""Developer tooling that is not part of the fer-edge wheel."""
