#!/usr/bin/env bash
# Copyright (c) mmdr1 contributors. All rights reserved.
#
# README command 2: install what is missing (tools/install.sh), then run the
# test suite against the installed mmdr1. Extra arguments go to pytest, e.g.
# `bash tools/run_tests.sh -k aligned_upsample`. Lint (flake8, isort, yapf) runs
# first and fails the run on any finding.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}
bash "$ROOT/tools/install.sh"
# Test tools, pinned so that lint results do not drift between machines.
"$PY" - <<'PYEOF' || "$PY" -m pip install -q pytest flake8==7.4.1 isort==9.0.2 yapf==0.43.0
from importlib.metadata import version
assert version('flake8') == '7.4.1' and version('isort') == '9.0.2'
assert version('yapf') == '0.43.0'
import pytest  # noqa: F401
PYEOF

# Lint (settings in setup.cfg, mmdet's style).
cd "$ROOT"
echo '[mmdr1-tests] flake8 + isort + yapf'
"$PY" -m flake8 mmdr1 tools tests configs setup.py
"$PY" -m isort --check-only --diff mmdr1 tools tests configs setup.py
if [ -n "$("$PY" -m yapf -r -d mmdr1 tools tests configs setup.py)" ]; then
    "$PY" -m yapf -r -d mmdr1 tools tests configs setup.py
    echo '[mmdr1-tests] yapf: the files above need `yapf -r -i` (setup.cfg style)'
    exit 1
fi

# Run from tests/ so that the checkout's un-built `mmdr1/` folder does not
# shadow the installed package (tests/conftest.py checks they are in sync).
cd "$ROOT/tests"
START=$(date +%s)
set +e
"$PY" -m pytest "$@"
rc=$?
set -e
echo "[mmdr1-tests] pytest exit code $rc after $(($(date +%s) - START)) s"
exit $rc
