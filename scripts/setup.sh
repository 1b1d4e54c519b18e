#!/usr/bin/env bash
# Set up Preflight in a virtual environment (.venv by default; PREFLIGHT_VENV overrides).
#   scripts/setup.sh          app dependencies
#   scripts/setup.sh --test   app + test dependencies + Debian's Chromium (browser tests) and PostgreSQL (shared-study sweep test)
# PyTorch: the CPU build where no NVIDIA GPU is visible, the CUDA build plus the `gpu` extra
# (onnxruntime-gpu, tensorrt) where `nvidia-smi -L` lists one; the `cpu` extra (onnxruntime) otherwise. PREFLIGHT_TORCH overrides the
# requirement (e.g. PREFLIGHT_TORCH='torch==2.11.0'); PREFLIGHT_TORCH=skip installs no torch.
# PREFLIGHT_EXTRAS adds extras (comma-separated, e.g. PREFLIGHT_EXTRAS=gpu) for builds where no GPU is
# visible but one will be at run time, as inside `docker build`.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
for arg in "$@"; do
  case "$arg" in
    --test) want_test=1 ;;
    *) echo "setup.sh: unknown option '$arg' (allowed: --test)" >&2; exit 2 ;;
  esac
done

venv=${PREFLIGHT_VENV:-.venv}
py=${PYTHON:-python3}
if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup.sh: Python 3.11 or newer is required (found: $("$py" --version 2>&1))" >&2; exit 2
fi
[ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
vpy="$venv/bin/python"
pip_install() { "$vpy" -m pip install -q --disable-pip-version-check "$@"; }

has_gpu=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then has_gpu=1; fi

torch_req=${PREFLIGHT_TORCH:-}
if [ "$torch_req" = skip ]; then
  echo "setup: skipping PyTorch (PREFLIGHT_TORCH=skip)"
elif "$vpy" -c 'import torch' 2>/dev/null && [ -z "$torch_req" ]; then
  echo "setup: PyTorch already present ($("$vpy" -c 'import torch; print(torch.__version__)'))"
elif [ "$has_gpu" = 1 ]; then
  echo "setup: NVIDIA GPU found: CUDA PyTorch and the gpu extra"
  pip_install "${torch_req:-torch>=2.4}"
else
  # A CPU build: a local wheel when the machine has one (pip's find-links), else PyTorch's CPU index.
  if [ -n "$torch_req" ]; then
    pip_install "$torch_req"
  elif ls ${PIP_FIND_LINKS:-/opt/wheels}/torch-*+cpu-*.whl >/dev/null 2>&1; then
    echo "setup: no NVIDIA GPU: CPU PyTorch from the local wheel"
    pip_install "torch==$(ls ${PIP_FIND_LINKS:-/opt/wheels}/torch-*+cpu-*.whl | sed -E 's/.*torch-([0-9.]+)\+cpu.*/\1/' | sort -V | tail -1)"
  else
    echo "setup: no NVIDIA GPU: CPU PyTorch from the PyTorch CPU index"
    pip_install torch --index-url https://download.pytorch.org/whl/cpu
  fi
fi

extras=${PREFLIGHT_EXTRAS:-}
[ "$has_gpu" = 1 ] && [[ ",$extras," != *,gpu,* ]] && extras="${extras:+$extras,}gpu"
# onnxruntime and onnxruntime-gpu install the same Python module: exactly one of them, by the GPU probe.
[[ ",$extras," != *,gpu,* ]] && [[ ",$extras," != *,cpu,* ]] && extras="${extras:+$extras,}cpu"
[ "$torch_req" != skip ] && extras="${extras:+$extras,}lab"   # peft needs torch
[ "$want_test" = 1 ] && extras="${extras:+$extras,}test"
pip_install -e ".${extras:+[$extras]}"

if [ "$want_test" = 1 ] && [ ! -x /usr/bin/chromium ]; then
  echo "setup: installing Debian's chromium for the browser tests"
  sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium >/dev/null
fi
if [ "$want_test" = 1 ] && ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "setup: installing Debian's postgresql for the shared-study sweep test"
  sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq postgresql >/dev/null
fi
echo "setup: ready ($("$vpy" --version), venv $venv)"
