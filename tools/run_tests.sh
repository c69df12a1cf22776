#!/usr/bin/env bash
# Copyright (c) mmdr1 contributors. All rights reserved.
#
# README command 2: install what is missing (tools/install.sh), then run the
# test suite against the installed mmdr1. Extra arguments go to pytest, e.g.
# `bash tools/run_tests.sh -k aligned_upsample`.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}
bash "$ROOT/tools/install.sh"
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
