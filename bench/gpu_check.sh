#!/usr/bin/env bash
# Every check of the harness that needs a GPU, in one call; prints its figures.
#
#   bash bench/gpu_check.sh            # on a machine with a GPU, from the repository root
#
# Uses .venv when there is one, else the machine's python3 (a GPU image with torch, pandas,
# pyarrow, scipy, matplotlib, pyyaml and torchdiffeq, and no network: the harness is
# installed from this tree without dependencies). Ray is not needed. Takes about 3 minutes
# on an H200. Put the figures in bench/README.md ("GPU").
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
if [ ! -x "$PY" ]; then
    PY=python3
    "$PY" -m pip install --quiet --no-deps --no-build-isolation --no-index -e . \
        || { echo "could not install the harness from this tree"; exit 2; }
fi
export PYTHONUNBUFFERED=1
status=0
echo "== machine"; nvidia-smi -L; nproc; "$PY" --version
echo "== placement and synchronised timing (bench/gpu_check.py)"
"$PY" bench/gpu_check.py || status=1
echo "== Disc-Opt vs Opt-Disc on the GPU (bench/do_vs_od.py --device cuda)"
"$PY" bench/do_vs_od.py --device cuda --iterations 300 --rounds 3 || status=1
echo "== the same on one CPU thread, for the ratio"
"$PY" bench/do_vs_od.py --device cpu --iterations 300 --rounds 3 --skip-strategies || status=1
exit $status
