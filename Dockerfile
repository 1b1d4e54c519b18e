# syntax=docker/dockerfile:1
# Preflight on a CUDA runtime: the same scripts/setup.sh as the README, run as a non-root user.
#   docker build -t preflight . && docker run --gpus all -p 8501:8501 preflight
# `docker build` sees no GPU, so setup.sh's nvidia-smi probe would pick CPU PyTorch and skip the `gpu`
# extra; the two build args below ask for what the container will have at run time instead.
#   --build-arg PREFLIGHT_TORCH=skip      no PyTorch (the estimator and data checks work; the model lab does not)
# Uploads, training runs and the run registry live in $PREFLIGHT_HOME: mount a volume there to keep them,
#   docker run --gpus all -p 8501:8501 -v preflight-data:/data preflight
#   --build-arg PREFLIGHT_EXTRAS=         without onnxruntime-gpu / tensorrt
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

# PyPI's Linux x86_64 torch wheels are the CUDA builds.
ARG PREFLIGHT_TORCH="torch>=2.4"
ARG PREFLIGHT_EXTRAS="gpu"

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv git ca-certificates \
 && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin preflight \
 && mkdir /app /data && chown preflight:preflight /app /data
USER preflight
WORKDIR /app

# Dependencies first (what `pip install -e .` needs), so editing the pages does not reinstall torch.
COPY --chown=preflight:preflight pyproject.toml README.md ./
COPY --chown=preflight:preflight scripts/ scripts/
COPY --chown=preflight:preflight engine/ engine/
RUN PREFLIGHT_TORCH="$PREFLIGHT_TORCH" PREFLIGHT_EXTRAS="$PREFLIGHT_EXTRAS" bash scripts/setup.sh

COPY --chown=preflight:preflight .streamlit/ .streamlit/
COPY --chown=preflight:preflight ui/ ui/
COPY --chown=preflight:preflight views/ views/
COPY --chown=preflight:preflight assets/ assets/
COPY --chown=preflight:preflight app.py ./

ENV PATH="/app/.venv/bin:$PATH" \
    PREFLIGHT_HOME=/data
VOLUME ["/data"]
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["/app/.venv/bin/python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://localhost:8501/_stcore/health', timeout=4).read() != b'ok')"]
CMD ["/app/.venv/bin/python", "-m", "streamlit", "run", "app.py", \
     "--server.address", "0.0.0.0", "--server.port", "8501", \
     "--server.headless", "true", "--browser.gatherUsageStats", "false"]
