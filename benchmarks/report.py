"""Writers of the benchmark outputs: ``NAME.json``, ``NAME.md`` (the table), ``NAME.png``; all atomic."""

from __future__ import annotations

import logging
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from edge_runtime.atomic_io import atomic_write_json, atomic_write_text, atomic_write_with
from edge_runtime.command_line import run_command

log = logging.getLogger(__name__)


def markdown_table(headers: Sequence[str], lines: Sequence[Sequence[Any]],
                   align_right: Sequence[bool] | None = None) -> str:
    """A GitHub markdown table (``None`` cells shown as an em dash)."""
    align = align_right or [False] * len(headers)
    rule = ["---:" if right else "---" for right in align]
    out = ["| " + " | ".join(headers) + " |", "| " + " | ".join(rule) + " |"]
    for line in lines:
        out.append("| " + " | ".join("—" if cell is None else str(cell) for cell in line) + " |")
    return "\n".join(out)


def fmt(value: float | None, digits: int = 2, suffix: str = "", signed: bool = False) -> str | None:
    """A number with ``digits`` decimals (``None`` stays ``None``)."""
    if value is None:
        return None
    return f"{value:{'+' if signed else ''}.{digits}f}{suffix}"


def new_figure(ncols: int = 1) -> tuple[Any, Any]:
    """A matplotlib figure with ``ncols`` side-by-side axes (Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(6.4 * ncols, 5.2), squeeze=False)
    return fig, axes[0]


def machine_title(fig: Any, text: str, width: int = 100) -> None:
    """Name the machine at the top of a figure (wrapped to fit)."""
    fig.suptitle("\n".join(textwrap.wrap(text, width)), fontsize=7)


def save_figure(fig: Any, path: Path) -> None:
    """Save a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    try:
        fig.tight_layout()
        atomic_write_with(path, lambda tmp: fig.savefig(tmp, dpi=120))
    finally:
        plt.close(fig)


def write_outputs(out_dir: str | Path, stem: str, result: dict[str, Any], markdown: str,
                  plot: Callable[[dict[str, Any], Path], None]) -> list[Path]:
    """Write ``stem.json``, ``stem.md`` and ``stem.png`` into ``out_dir``; return the paths written.

    Without matplotlib the PNG is left out with a warning (the table and JSON are still written).
    """
    out = Path(out_dir)
    written = [out / f"{stem}.json", out / f"{stem}.md"]
    atomic_write_json(written[0], result)
    atomic_write_text(written[1], markdown)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        log.warning("matplotlib is not installed: %s.png not written (pip install matplotlib)", stem)
        return written
    png = out / f"{stem}.png"
    plot(result, png)
    written.append(png)
    return written


def run_and_report(args: Any, run: Callable[[Any], dict[str, Any]], stem: str,
                   to_markdown: Callable[[dict[str, Any]], str],
                   plot: Callable[[dict[str, Any], Path], None]) -> int:
    """The shared body of the benchmark CLIs: run, print the table, write ``--out``; returns 0.

    Bad input raises a :class:`~edge_runtime.errors.FerEdgeError` (one ``error:`` line, exit 2, from
    :func:`edge_runtime.command_line.run_command`).
    """
    from .device import describe

    result = run(args)
    markdown = to_markdown(result)
    print(markdown)
    if args.out is not None:
        for path in write_outputs(args.out, stem, result, markdown, plot):
            log.info("wrote %s", path)
    log.info("done in %.0f s on %s", result["duration_s"], describe(result["device"]))
    return 0


def run_benchmark_command(parser: Any, body: Callable[[Any], int], argv: Sequence[str] | None,
                          log_format: str = "%(message)s") -> int:
    """Run a benchmark's command line with ``argv`` (default ``sys.argv[1:]``) kept as ``args.argv``, so its
    outputs record the exact command; 2 with one ``error:`` line on bad input."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser.set_defaults(argv=argv)
    return run_command(parser, body, argv, log_format=log_format)
