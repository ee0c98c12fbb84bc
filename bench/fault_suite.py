"""Run the planted-fault suite and write bench/results/fault_suite.md.

Usage: ``python bench/fault_suite.py [--seed N]``. It trains tiny models on the CPU, which
took 35-40 s of CPU time and about 2 minutes of wall-clock time on a shared 2-core machine.
It exits non-zero when a planted fault is missed or a clean setup raises a warning.
"""

from __future__ import annotations

import sys
from pathlib import Path

from recwidgets.diagnose.suite import main

OUT = Path(__file__).resolve().parent / "results" / "fault_suite.md"

if __name__ == "__main__":
    sys.exit(main(["--out", str(OUT), *sys.argv[1:]]))
