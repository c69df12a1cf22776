#!/usr/bin/env bash
# Copyright (c) mmdr1 contributors. All rights reserved.
#
# Install everything mmdr1 needs into the current Python environment, then
# mmdr1 itself with its compiled ops. Idempotent: what is already there and
# fits is kept, so a second run takes seconds plus the mmdr1 rebuild.
#
# Steps (see ../README.md "Installation" and the traps in the spec
# mmdet_stack.md section 7):
#   1. torch: the one already installed is used; with none, torch==2.13.0
#      (CPU). GPU users install their CUDA torch first;
#   2. build tools: setuptools<81 (pkg_resources is needed by openmim 0.3.x,
#      mmengine 0.10.7 and mmcv's setup.py; 81 warns on every import), wheel, ninja;
#   3. mmcv 2.1.0 with compiled ops: a fitting wheel from the wheel cache
#      ($MMDR1_WHEEL_CACHE), else built from the PyPI source release with
#      --no-build-isolation (about 10 minutes on 2 cores for CPU ops) and
#      stored in the cache;
#   4. mmengine 0.10.7, mmdet 3.3.0, pycocotools, cityscapesscripts, openmim,
#      panopticapi (panopticapi-lite, see "numpy pin" below);
#   5. mmdr1 from this checkout: `pip install --no-build-isolation .`
#      (non-editable, so that `mim train/test mmdr1` find its configs and
#      tools; spec section 1.3).
#
# Environment:
#   PYTHON             interpreter to install into (default: python3)
#   MMDR1_WHEEL_CACHE  folder of prebuilt mmcv wheels; freshly built wheels
#                      are stored in <cache>/torch-<torch version>/
#                      (default: ~/.cache/mmdr1/wheels)
#   MMDR1_SKIP_SELF=1  install the dependencies only, not mmdr1
#   MAX_JOBS, FORCE_CUDA, TORCH_CUDA_ARCH_LIST   passed on to the builds
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}
MMCV_VERSION=2.1.0
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore

log() { echo "[mmdr1-install] $*"; }
pip_install() { "$PY" -m pip install -q "$@"; }
# Succeeds when the given Python snippet runs without error.
py_ok() { "$PY" -c "$1" >/dev/null 2>&1; }
# Prints the installed version of a distribution, or nothing.
dist_version() {
    "$PY" - "$1" <<'EOF' 2>/dev/null || true
import sys
from importlib.metadata import PackageNotFoundError, version
try:
    print(version(sys.argv[1]))
except PackageNotFoundError:
    pass
EOF
}
# Installs "name==version" unless exactly that version is installed.
ensure_pinned() {
    local name=$1 want=$2
    if [ "$(dist_version "$name")" != "$want" ]; then
        log "installing $name==$want"
        pip_install "$name==$want"
    fi
}

START=$(date +%s)
log "python: $("$PY" -c 'import sys; print(sys.executable, sys.version.split()[0])')"

# 1. torch: keep the installed one.
if py_ok 'import torch'; then
    log "using installed torch $("$PY" -c 'import torch; print(torch.__version__)')"
else
    log 'no torch found: installing torch==2.13.0 (CPU build here; GPU users: install your CUDA torch first)'
    pip_install torch==2.13.0 'setuptools<81'
fi
# 2. Build tools, after torch (which asks for setuptools>=77): setuptools 82
# removed pkg_resources (spec 7.4) and 81 warns about it on every `mim` call.
ensure_build_tools() {
    if ! py_ok 'import pkg_resources, wheel, ninja' || ! py_ok "
import setuptools, sys
sys.exit(int(setuptools.__version__.split('.')[0]) >= 81)"; then
        log 'installing build tools (setuptools<81, wheel, ninja)'
        pip_install 'setuptools<81' wheel ninja
    fi
}
ensure_build_tools

TORCH_VERSION=$("$PY" -c 'import torch; print(torch.__version__)')

# 3. mmcv with compiled ops, matching this torch.
mmcv_fits() {
    py_ok "
import torch, mmcv
assert mmcv.__version__ == '$MMCV_VERSION', mmcv.__version__
import mmcv._ext  # compiled ops load against this torch
from mmcv.ops import RoIAlign
"
}

try_mmcv_wheel() {  # $1: wheel file; installs it and keeps it if it fits
    log "trying cached mmcv wheel $1"
    pip_install --no-deps --force-reinstall "$1" || return 1
    pip_install "$1" || return 1  # mmcv's runtime dependencies
    if mmcv_fits; then
        return 0
    fi
    log "cached wheel $1 does not fit torch $TORCH_VERSION; skipping it"
    return 1
}

build_mmcv() {  # builds mmcv from the PyPI source release into $1
    local out=$1 tmp
    tmp=$(mktemp -d)
    log "building mmcv $MMCV_VERSION with ops from source for torch $TORCH_VERSION (about 10 minutes on 2 cores)"
    "$PY" -m pip download -q --no-deps --no-build-isolation --no-binary :all: \
        "mmcv==$MMCV_VERSION" -d "$tmp"
    tar -xzf "$tmp"/mmcv-"$MMCV_VERSION".tar.gz -C "$tmp"
    local src="$tmp/mmcv-$MMCV_VERSION"
    # --no-build-isolation: with isolation mmcv cannot import torch and
    # silently builds without ops (spec 7.2, 7.4).
    if ! MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} "$PY" -m pip wheel \
        --no-build-isolation --no-deps -w "$out" "$src"; then
        # Newer torch may need C++20 where mmcv hard-codes C++17 (mmcv#3341).
        log 'mmcv build failed; retrying with -std=c++20 (mmcv#3341)'
        sed -i 's/-std=c++17/-std=c++20/g' "$src/setup.py"
        MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} "$PY" -m pip wheel \
            --no-build-isolation --no-deps -w "$out" "$src"
    fi
    rm -rf "$tmp"
}

if mmcv_fits; then
    log "mmcv $MMCV_VERSION with ops already installed"
else
    CACHE=${MMDR1_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmdr1/wheels}
    TORCH_DIR="$CACHE/torch-$TORCH_VERSION"
    installed=0
    # Wheels built by this script are filed by torch version; loose wheels
    # (e.g. a shared cache) are tried and kept only if they import.
    for whl in "$TORCH_DIR"/mmcv-"$MMCV_VERSION"-*.whl \
        "$CACHE"/mmcv-"$MMCV_VERSION"-*.whl; do
        [ -f "$whl" ] || continue
        if try_mmcv_wheel "$whl"; then installed=1; break; fi
    done
    if [ "$installed" = 0 ]; then
        out=$TORCH_DIR
        if ! mkdir -p "$out" 2>/dev/null || [ ! -w "$out" ]; then
            out=${XDG_CACHE_HOME:-$HOME/.cache}/mmdr1/wheels/torch-$TORCH_VERSION
            log "wheel cache $CACHE is not writable; storing the build in $out"
            mkdir -p "$out"
        fi
        build_mmcv "$out"
        whl=$(ls -t "$out"/mmcv-"$MMCV_VERSION"-*.whl | head -n 1)
        pip_install --no-deps --force-reinstall "$whl"
        pip_install "$whl"
        mmcv_fits || { log "freshly built $whl does not import"; exit 1; }
        log "stored $whl"
    fi
fi

# 4. The rest of the stack, pinned to the versions mmdr1 is tested with.
ensure_pinned mmengine 0.10.7
ensure_pinned mmdet 3.3.0
py_ok 'import pycocotools.mask' || { log 'installing pycocotools'; pip_install pycocotools; }
py_ok 'import cityscapesscripts.helpers.labels' ||
    { log 'installing cityscapesscripts'; pip_install cityscapesscripts; }
# openmim 0.3.8: 0.3.9 differs only by `mim download --dataset`, and pulls in
# opendatalab/openxlab, which pin setuptools 60 and requests 2.28 and so
# break torch's setuptools>=77 requirement.
py_ok 'import mim' || ensure_pinned openmim 0.3.8
# panopticapi: the PyPI repackaging panopticapi-lite declares numpy<2 but
# runs on numpy 2; install it without its pins. Its other dependency,
# scikit-image, is installed normally so that `pip check` reports only the
# numpy pin (the one accepted conflict, README "Installation").
if ! py_ok 'import panopticapi.evaluation, panopticapi.utils'; then
    log 'installing panopticapi-lite 0.2.0 (--no-deps, see README)'
    pip_install --no-deps panopticapi-lite==0.2.0
fi
py_ok 'import skimage' || { log 'installing scikit-image'; pip_install scikit-image; }

ensure_build_tools  # in case a dependency moved setuptools

# 5. mmdr1 itself, with its ops.
if [ "${MMDR1_SKIP_SELF:-0}" != 1 ]; then
    log 'installing mmdr1 from this checkout (builds mmdr1._ext)'
    (cd "$ROOT" && "$PY" -m pip install -q --no-build-isolation --no-deps .)
    (cd / && "$PY" -c "
import mmdr1, mmdr1.ops
assert mmdr1.ops.ext_available(), 'mmdr1._ext did not build'
print('[mmdr1-install] mmdr1', mmdr1.__version__, 'with ops at', mmdr1.__file__)
")
fi

# pip check: the only accepted conflict is panopticapi-lite's numpy<2 pin.
if ! "$PY" -m pip check >/tmp/mmdr1-pip-check.$$ 2>&1; then
    if grep -v 'panopticapi-lite .* numpy' /tmp/mmdr1-pip-check.$$ | grep -q .; then
        log 'pip check found conflicts besides the accepted panopticapi-lite numpy pin:'
        cat /tmp/mmdr1-pip-check.$$
    else
        log 'pip check: only the accepted panopticapi-lite numpy<2 pin (README "Installation")'
    fi
fi
rm -f /tmp/mmdr1-pip-check.$$
log "done in $(($(date +%s) - START)) s"
