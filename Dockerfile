# The training image of the Docker and Kubernetes GPU work pools (`make image`; README "Running on a GPU node"):
# CUDA-enabled torch, this project with the pools' worker packages, and git (the deployments clone the code at
# the deployed ref), running as a non-root user.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends git && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 alignment
WORKDIR /opt/alignment
# PyPI's Linux torch wheel is the CUDA build (its CUDA libraries arrive as pip packages), so no CUDA base image
# is needed; the version is requirements.lock's (which pins the CPU build, 2.13.0+cpu, for `make install`).
RUN pip install --no-cache-dir "torch==2.13.0"
COPY pyproject.toml README.md ./
COPY alignment ./alignment
COPY flows ./flows
RUN pip install --no-cache-dir ".[pools]"
USER alignment
ENV PREFECT_SERVER_ANALYTICS_ENABLED=false
