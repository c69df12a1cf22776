#!/usr/bin/env bash
# Copyright (c) mmdr1 contributors. All rights reserved.
#
# README command 1, the main job: install what is missing, make the toy
# panoptic data set if it is not there, train the toy panoptic model with
# `mim train`, test it with `mim test` (PQ/SQ/RQ for All/Things/Stuff) and
# write panoptic overlay pictures.
#
# Outputs (relative to the checkout):
#   data/toy_panoptic/                 the generated data (kept for reruns)
#   work_dirs/toy_demo/                training logs and checkpoints
#   work_dirs/toy_demo/pictures/       result pictures (prediction overlays)
#   work_dirs/toy_demo/pq.txt          the PQ table of the test run
#
# Environment: PYTHON (interpreter), TOY_CONFIG (config to run, default
# configs/dr1mask/dr1mask_panoptic_r18_toy.py), TOY_WORK_DIR and
# tools/install.sh's.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}
CONFIG=${TOY_CONFIG:-configs/dr1mask/dr1mask_panoptic_r18_toy.py}
WORK_DIR=${TOY_WORK_DIR:-work_dirs/toy_demo}
log() { echo "[mmdr1-demo] $*"; }

bash "$ROOT/tools/install.sh"
cd "$ROOT"
START=$(date +%s)

# mim from the same environment as $PY.
BIN=$("$PY" -c 'import os, sys; print(os.path.dirname(sys.executable))')
MIM="$BIN/mim"
[ -x "$MIM" ] || MIM=$(command -v mim)

log 'toy panoptic data (generated once, skipped when present)'
"$PY" tools/dataset_converters/make_toy_panoptic.py --out-dir data/toy_panoptic

log "training $CONFIG with mim (logs and ETA below)"
"$MIM" train mmdr1 "$CONFIG" --work-dir "$WORK_DIR"
CKPT=$(cat "$WORK_DIR/last_checkpoint")
TRAIN_END=$(date +%s)

log "testing $CKPT with mim"
rm -rf "$WORK_DIR/pictures"
"$MIM" test mmdr1 "$CONFIG" --checkpoint "$CKPT" --work-dir "$WORK_DIR" \
    --show-dir pictures 2>&1 | tee "$WORK_DIR/test.log"

# mmdet's visualization hook writes below <work_dir>/<timestamp>/; gather the
# newest run's pictures in one stable folder.
latest=$(ls -td "$WORK_DIR"/*/pictures 2>/dev/null | head -n 1)
if [ -n "$latest" ]; then
    rm -rf "$WORK_DIR/pictures"
    cp -r "$latest" "$WORK_DIR/pictures"
fi
# The PQ table, as printed by mmdet's CocoPanopticMetric.
awk '/Panoptic Evaluation Results/,/^$/' "$WORK_DIR/test.log" |
    grep -E '^\S*[|+]|Panoptic' >"$WORK_DIR/pq.txt" || true
echo
log "PQ/SQ/RQ on the toy val set:"
cat "$WORK_DIR/pq.txt"
log "pictures: $WORK_DIR/pictures ($(ls "$WORK_DIR/pictures" 2>/dev/null | wc -l) files)"
log "train $((TRAIN_END - START)) s, total $(($(date +%s) - START)) s (after installation)"
