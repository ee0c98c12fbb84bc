#!/usr/bin/env bash
# Create the separate virtual environment that the RecBole and ranx sides of the benchmarks run in.
#
# RecBole 1.2.1 needs numpy < 2, which the project's own environment does not have, so RecBole
# and ranx live in their own venv (default /work/recbole-venv, or the first argument).
#
# torch: the CPU build of torch 2.13.0 is not on PyPI (PyPI's Linux wheel is the CUDA build,
# several GB with its nvidia-* dependencies). When the project venv already has torch 2.13.0,
# its package folders are linked into the new venv, so both sides run the same torch build and
# nothing is downloaded. Otherwise torch==2.13.0 is installed from PyPI. A constraints file pins
# torch==2.13.0 for every later pip call, so pip never pulls a newer torch.
#
# RecBole is installed with --no-deps followed by its requirements without `ray`: ray is only
# imported by recbole.quick_start (hyper-parameter tuning), which the benchmarks do not use.
#
# Usage: bash bench/setup_recbole_venv.sh [VENV_DIR] [PROJECT_VENV]
set -euo pipefail

VENV="${1:-/work/recbole-venv}"
PROJECT_VENV="${2:-$(cd "$(dirname "$0")/.." && pwd)/.venv}"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"

CONSTRAINTS="$VENV/constraints.txt"
printf 'torch==2.13.0\nnumpy<2\n' >"$CONSTRAINTS"

PROJECT_SITE=""
if [ -x "$PROJECT_VENV/bin/python" ]; then
    PROJECT_SITE="$("$PROJECT_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
fi

if [ -n "$PROJECT_SITE" ] && ls -d "$PROJECT_SITE"/torch-2.13.0*.dist-info >/dev/null 2>&1; then
    echo "linking torch 2.13.0 from $PROJECT_SITE"
    for entry in torch torchgen functorch "$(basename "$(ls -d "$PROJECT_SITE"/torch-2.13.0*.dist-info | head -1)")"; do
        if [ -e "$PROJECT_SITE/$entry" ] && [ ! -e "$SITE/$entry" ]; then
            ln -s "$PROJECT_SITE/$entry" "$SITE/$entry"
        fi
    done
    # torch's own requirements, installed normally.
    "${PIP[@]}" install -c "$CONSTRAINTS" filelock fsspec jinja2 networkx setuptools sympy typing-extensions
else
    echo "no torch 2.13.0 in $PROJECT_VENV; installing torch==2.13.0 from PyPI (large download)"
    "${PIP[@]}" install -c "$CONSTRAINTS" "torch==2.13.0"
fi

"${PIP[@]}" install -c "$CONSTRAINTS" --no-deps "recbole==1.2.1"
"${PIP[@]}" install -c "$CONSTRAINTS" \
    "numpy<2" "scipy>=1.6.0" "pandas>=1.3.0,<2.3" "tqdm>=4.48.2" "colorlog==4.7.2" "colorama==0.4.4" \
    "scikit-learn>=0.23.2" "pyyaml>=5.1.0" "tensorboard>=2.5.0" "thop>=0.1.1.post2207130030" \
    "tabulate>=0.8.10" "plotly>=4.0.0" "texttable>=0.9.0" "psutil>=5.9.0"
"${PIP[@]}" install -c "$CONSTRAINTS" "ranx==0.3.21"

"$VENV/bin/python" - <<'EOF'
import numpy, torch, recbole, ranx
print("numpy", numpy.__version__, "torch", torch.__version__, "recbole", recbole.__version__, "ranx ok")
EOF
