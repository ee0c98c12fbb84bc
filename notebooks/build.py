"""Build the walkthrough notebooks from the plain-Python sources in ``notebooks/src/``.

Each ``src/NN_name.py`` becomes ``NN_name.ipynb`` beside this script, unexecuted. Cells are
separated by ``# %%`` lines: ``# %%`` starts a code cell and ``# %% [markdown]`` a
Markdown cell, whose lines drop their leading ``# ``. Text before the first marker is
ignored, so a source file may start with a module docstring for reviewers.

Cell ids are derived from the file name and the cell index, so rebuilding an unchanged
source gives a byte-identical notebook.

    python notebooks/build.py            # write every notebook
    python notebooks/build.py --check    # exit 1 when a committed notebook differs from its source
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

NOTEBOOKS_DIR = Path(__file__).resolve().parent
SOURCE_DIR = NOTEBOOKS_DIR / "src"

_MARKER = re.compile(r"^# %%(?P<rest>.*)$")

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
LANGUAGE_INFO = {"name": "python", "pygments_lexer": "ipython3", "file_extension": ".py", "mimetype": "text/x-python"}


class SourceError(ValueError):
    """A notebook source file does not follow the ``# %%`` cell format."""


def _markdown_text(lines: list[str], path: Path, first_line: int) -> str:
    text = []
    for offset, line in enumerate(lines):
        if line == "#":
            text.append("")
        elif line.startswith("# "):
            text.append(line[2:])
        elif line.strip() == "":
            text.append("")
        else:
            raise SourceError(
                f"{path}:{first_line + offset}: a Markdown cell line must start with '# ' or be '#'; got {line!r}."
            )
    return "\n".join(text).strip("\n")


def parse_cells(text: str, path: Path) -> list[tuple[str, str]]:
    """Split a source file into ``(cell_type, source)`` pairs, in order."""
    cells: list[tuple[str, str]] = []
    kind: str | None = None
    body: list[str] = []
    start = 0

    def flush() -> None:
        if kind is None:
            return
        if kind == "markdown":
            source = _markdown_text(body, path, start + 1)
        else:
            source = "\n".join(body).strip("\n")
        if not source.strip():
            raise SourceError(f"{path}:{start}: empty {kind} cell; remove the marker or add content.")
        cells.append((kind, source))

    for number, line in enumerate(text.splitlines(), start=1):
        match = _MARKER.match(line)
        if match is None:
            body.append(line)
            continue
        flush()
        rest = match.group("rest").strip()
        if rest == "":
            kind = "code"
        elif rest == "[markdown]":
            kind = "markdown"
        else:
            raise SourceError(f"{path}:{number}: unknown cell marker {line!r}; use '# %%' or '# %% [markdown]'.")
        body = []
        start = number
    flush()
    if not cells:
        raise SourceError(f"{path}: no '# %%' cell marker found.")
    return cells


def build_notebook(path: Path) -> nbformat.NotebookNode:
    """Return the unexecuted notebook for one source file."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": dict(LANGUAGE_INFO)}
    for index, (kind, source) in enumerate(parse_cells(path.read_text(encoding="utf-8"), path)):
        cell_id = f"{path.stem.split('_', 1)[0]}-{index:02d}"
        if kind == "markdown":
            cell = nbformat.v4.new_markdown_cell(source, id=cell_id)
        else:
            cell = nbformat.v4.new_code_cell(source, id=cell_id)
        notebook.cells.append(cell)
    nbformat.validate(notebook)
    return notebook


def notebook_text(path: Path) -> str:
    """Return the .ipynb text of one source file, as written to disk."""
    return nbformat.writes(build_notebook(path)) + "\n"


def sources() -> list[Path]:
    """Return the source files in notebook order."""
    return sorted(SOURCE_DIR.glob("[0-9][0-9]_*.py"))


def target_of(source: Path) -> Path:
    """Return the .ipynb path built from ``source``."""
    return NOTEBOOKS_DIR / f"{source.stem}.ipynb"


def main(argv: list[str] | None = None) -> int:
    """Write (or with ``--check`` compare) every notebook; return the exit status."""
    parser = argparse.ArgumentParser(description="Build notebooks/*.ipynb from notebooks/src/*.py.")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when a notebook is out of date")
    args = parser.parse_args(argv)

    stale = []
    for source in sources():
        target = target_of(source)
        text = notebook_text(source)
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(target.name)
        else:
            target.write_text(text, encoding="utf-8")
            print(f"wrote {target.relative_to(NOTEBOOKS_DIR.parent)}")
    if stale:
        print(f"out of date: {', '.join(stale)}; run python notebooks/build.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
