#!/usr/bin/env bash
# Issue 8's GPU checks in one command, for a lent GPU machine (its own Python 3.12 and CUDA PyTorch, no
# network, this repository copied, ../shared NOT copied). Runs every GPU test (pytest -m gpu) and the GPU
# inference benchmarks (bench/infer_gpu.py) and issue 19's real architectures, within one device call: every
# stage's timeout is capped by what is left of GPU_CHECK_BUDGET_S (default 540 s, under the 600 s a call may
# run), a stage that cannot start with its minimum left is skipped and said so, and one JSON of figures is
# written whatever ran.
#
#   bash bench/gpu_check.sh [--out FILE] [--dry-run] [--no-hf]
#     --out FILE   the figures (default: $OUT/gpu_check.json when $OUT is set, else ./gpu_check.json)
#     --dry-run    on a machine without a GPU: check the packages, then run the benchmark script on tiny CPU
#                  shapes and only collect the GPU tests (exercises this script, not the GPU)
#     --no-hf      skip issue 19's real architectures (bench/hf_cpu.py at Qwen2.5-0.5B, 1.5B and 7B, random weights:
#                  decode tok/s at batch 1 and 8 and a 512-token prefill on torch, onnxruntime-cuda and onnxruntime's
#                  TensorRT provider, each beside the serving estimator; needs transformers, peft and
#                  onnxruntime-genai; building the 7B checkpoint (28 GiB fp32) takes minutes; HF_SIZES picks sizes)
#
# Packages it cannot find are listed with how to carry them from the development machine (wheels are
# git-ignored folders a device run carries):
#   pure-Python/manylinux wheels: bash ../shared/tools/device-wheelhouse.sh PKG...  -> carry .device-wheels
#   onnxruntime-gpu (too big for one transfer): bash ../shared/tools/ort-gpu-chunks.sh -> carry .ortchunk1..5
#   tensorrt: not installable from PyPI for CUDA 13 (no wheel, checked 2026-12-02): its tests skip with that reason.
set -uo pipefail
cd "$(dirname "$0")/.."
OUTFILE=""
DRY=0
HF=1
while [ $# -gt 0 ]; do
  case "$1" in
    --out) [ $# -ge 2 ] || { echo "gpu_check.sh: --out needs a file" >&2; exit 2; }; OUTFILE="$2"; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    --no-hf) HF=0; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $1 (use --out FILE, --dry-run, --no-hf)" >&2; exit 2 ;;
  esac
done
[ -n "$OUTFILE" ] || OUTFILE="${OUT:-.}/gpu_check.json"
PY=${PYTHON:-python3}
START=$(date +%s)
BUDGET=${GPU_CHECK_BUDGET_S:-540}
SKIPPED=""
# left MIN CAP: seconds to give the next stage (at most CAP, keeping 20 s to write the JSON), or 0 to skip it
left() { local l=$(( BUDGET - ($(date +%s) - START) - 20 )); [ "$l" -ge "$1" ] && echo $(( l < $2 ? l : $2 )) || echo 0; }

# Carried wheels, installed into a private folder (never into the machine's Python).
if [ -d .device-wheels ]; then
  $PY -m pip install -q --no-index --no-deps --find-links .device-wheels --target "$HOME/preflight-site" .device-wheels/*.whl \
    && export PYTHONPATH="$HOME/preflight-site:${PYTHONPATH:-}"
fi
if ls .ortchunk*/part.* >/dev/null 2>&1 && [ ! -d "$HOME/ort-site" ]; then
  # ort-gpu-chunks.sh pieces: join them, name the wheel from its own .dist-info, install privately
  mkdir -p "$HOME/ort" && cp .ortchunk*/part.* "$HOME/ort/" && cat "$HOME"/ort/part.* > "$HOME/ort/joined.zip"
  WHL=$($PY - "$HOME/ort/joined.zip" <<'PY'
import sys, zipfile, os
z = zipfile.ZipFile(sys.argv[1])
info = next(n.split("/")[0] for n in z.namelist() if n.split("/")[0].endswith(".dist-info"))
name, ver = info[:-len(".dist-info")].rsplit("-", 1)
dest = os.path.join(os.path.dirname(sys.argv[1]), f"{name}-{ver}-cp312-cp312-linux_x86_64.whl")
os.replace(sys.argv[1], dest)
print(dest)
PY
) && $PY -m pip install -q --no-index --no-deps --no-compile --target "$HOME/ort-site" "$WHL" \
    || echo "gpu_check.sh: the carried .ortchunk pieces did not make an installable onnxruntime-gpu wheel" >&2
fi
[ -d "$HOME/ort-site" ] && export PYTHONPATH="$HOME/ort-site:${PYTHONPATH:-}"
export PYTHONPATH="$PWD:${PYTHONPATH:-}"
export PREFLIGHT_HOME="${PREFLIGHT_HOME:-$PWD/.preflight-gpu-check}"
export PREFLIGHT_COMPILE_TESTS=1

# What is missing, exactly, and how to carry it.
MISSING=$($PY - <<'PY'
import importlib.util
need = {"torch": "torch", "numpy": "numpy", "pandas": "pandas", "safetensors": "safetensors",
        "tokenizers": "tokenizers", "psutil": "psutil", "onnx": "onnx", "onnxscript": "onnxscript",
        "ml_dtypes": "ml_dtypes", "pytest": "pytest", "pytest_timeout": "pytest-timeout", "flatbuffers": "flatbuffers",
        "google.protobuf": "protobuf", "sympy": "sympy", "packaging": "packaging", "onnxruntime": "onnxruntime-gpu",
        "transformers": "transformers", "peft": "peft", "onnxruntime_genai": "onnxruntime-genai-cuda"}
def missing(mod):
    try:
        return importlib.util.find_spec(mod) is None
    except (ImportError, ValueError):
        return True
print(" ".join(pip for mod, pip in need.items() if missing(mod)))
PY
)
WHEELS=$(echo "$MISSING" | tr ' ' '\n' | grep -v -e '^onnxruntime-gpu$' -e '^torch$' -e '^$' | tr '\n' ' ')
if [ -n "${MISSING// /}" ]; then
  echo "gpu_check.sh: missing packages: $MISSING"
  [ -n "${WHEELS// /}" ] && echo "  carry them: on the development machine run  bash ../shared/tools/device-wheelhouse.sh $WHEELS  and carry .device-wheels (this script installs it)"
  echo "$MISSING" | grep -q onnxruntime-gpu && echo "  onnxruntime-gpu: run  bash ../shared/tools/ort-gpu-chunks.sh  and carry .ortchunk1 .. .ortchunk5, one per transfer (this script joins and installs them)"
  echo "$MISSING" | grep -qw torch && echo "  torch: the GPU machine's own CUDA PyTorch is expected; nothing here can replace it"
fi
if ! echo " $MISSING " | grep -q " onnxruntime-gpu "; then
  $PY -c "import onnxruntime as o, sys; sys.exit(0 if 'CUDAExecutionProvider' in o.get_available_providers() else 1)" 2>/dev/null \
    || echo "gpu_check.sh: this onnxruntime has no CUDAExecutionProvider (the CPU package?): carry onnxruntime-gpu with  bash ../shared/tools/ort-gpu-chunks.sh  (.ortchunk1 .. .ortchunk5); onnxruntime-cuda tests skip until then"
fi
$PY -c "import tensorrt" 2>/dev/null || echo "gpu_check.sh: tensorrt is not importable: its tests skip (pip install tensorrt 10/11 needs a wheel for this CUDA; none on PyPI for CUDA 13 as of 2026-12-02)"
for must in torch numpy onnx onnxscript; do
  if echo " $MISSING " | grep -q " $must "; then echo "gpu_check.sh: cannot run without $must" >&2; exit 3; fi
done

RESULTS=$(mktemp -d)
if [ "$DRY" = 1 ]; then
  timeout 120 $PY -m pytest -q -m gpu --collect-only -p no:cacheprovider tests/infer tests/lab > "$RESULTS/pytest.txt" 2>&1
  TEST_RC=$?
  timeout 300 $PY bench/infer_gpu.py --dry-run --out "$RESULTS/bench.json" > "$RESULTS/bench.txt" 2>&1
  BENCH_RC=$?
else
  $PY -c "import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)" || { echo "gpu_check.sh: no CUDA GPU visible to PyTorch (use --dry-run)" >&2; exit 3; }
  TO=""; $PY -c "import pytest_timeout" 2>/dev/null && TO="--timeout 120"
  T=$(left 60 180)
  if [ "$T" -gt 0 ]; then
    timeout "$T" $PY -m pytest -q -m gpu -p no:cacheprovider $TO tests/infer tests/lab tests/hf > "$RESULTS/pytest.txt" 2>&1
    TEST_RC=$?
  else TEST_RC=124; SKIPPED="$SKIPPED pytest"; echo "skipped: no budget left" > "$RESULTS/pytest.txt"; fi
  T=$(left 60 150)
  if [ "$T" -gt 0 ]; then
    timeout "$T" $PY bench/infer_gpu.py --out "$RESULTS/bench.json" > "$RESULTS/bench.txt" 2>&1
    BENCH_RC=$?
  else BENCH_RC=124; SKIPPED="$SKIPPED infer_gpu"; echo "skipped: no budget left" > "$RESULTS/bench.txt"; fi
fi
# Issue 19: real architectures (random weights) on torch, onnxruntime-cuda and onnxruntime's TensorRT provider.
if [ "$HF" = 1 ] && $PY -c "import transformers, onnxruntime_genai" 2>/dev/null; then
  for size in ${HF_SIZES:-qwen2.5-0.5b qwen2.5-1.5b qwen2.5-7b}; do
    if [ "$DRY" = 1 ]; then  # no GPU: the script's path on the CPU at the smallest size, one precision
      [ "$size" = qwen2.5-0.5b ] || continue
      timeout 600 $PY bench/hf_cpu.py --model "$size" --backends torch --dtypes fp32 --batches 1 --prompt-tokens 16 \
        --iters 1 --out "$RESULTS/hf-$size.json" > "$RESULTS/hf-$size.txt" 2>&1
    else
      # the 7B checkpoint alone takes minutes to build: it needs 240 s left, the smaller ones 90 s
      case "$size" in *7b*) need=240 ;; *) need=90 ;; esac
      T=$(left "$need" 300)
      if [ "$T" -eq 0 ]; then SKIPPED="$SKIPPED $size"; echo "gpu_check.sh: $size skipped (under ${need} s of the budget left)"; continue; fi
      timeout "$T" $PY bench/hf_cpu.py --model "$size" --backends torch,onnxruntime-cuda,onnxruntime-trt --dtypes fp32,int4 \
        --batches 1,8 --prompt-tokens 512 --iters 3 --out "$RESULTS/hf-$size.json" > "$RESULTS/hf-$size.txt" 2>&1
    fi
    echo "gpu_check.sh: $size rc $? ($(tail -c 300 "$RESULTS/hf-$size.txt" | tr '\n' ' '))"
  done
elif [ "$HF" = 1 ]; then
  echo "gpu_check.sh: transformers or onnxruntime-genai is missing: the real-architecture benchmarks (issue 19) skip"
fi
tail -5 "$RESULTS/pytest.txt"
tail -3 "$RESULTS/bench.txt"
$PY - "$RESULTS" "$OUTFILE" "$TEST_RC" "$BENCH_RC" "$DRY" "$START" "$MISSING" "$SKIPPED" "$BUDGET" <<'PY'
import json, sys, time, pathlib
res, out, test_rc, bench_rc, dry, start, missing, skipped, budget = sys.argv[1:10]
res = pathlib.Path(res)
doc = {"dry_run": dry == "1", "pytest_rc": int(test_rc), "bench_rc": int(bench_rc),
       "pytest_tail": res.joinpath("pytest.txt").read_text(errors="replace").splitlines()[-15:],
       "missing_packages": missing.split(), "seconds": round(time.time() - int(start), 1),
       "budget_s": int(budget), "skipped_for_budget": skipped.split()}
try:
    doc["figures"] = json.loads(res.joinpath("bench.json").read_text())
except (OSError, ValueError) as exc:
    doc["figures"] = None
    doc["bench_tail"] = res.joinpath("bench.txt").read_text(errors="replace").splitlines()[-20:]
doc["hf"] = {}
for f in sorted(res.glob("hf-*.json")):
    try:
        doc["hf"][f.stem[3:]] = json.loads(f.read_text())
    except (OSError, ValueError):
        doc["hf"][f.stem[3:]] = None
pathlib.Path(out).write_text(json.dumps(doc, indent=1, default=str))
print(f"gpu_check.sh: wrote {out} ({doc['seconds']} s; pytest rc {test_rc}, bench rc {bench_rc})")
PY
rm -rf "$RESULTS"
