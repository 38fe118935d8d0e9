# The quality-inspection step of the manufacturing example. Build from examples/ (the build context):
#   docker build -f examples/manufacturing/quality-inspection.Dockerfile -t stepline/manufacturing-quality-inspection:0.1.0 examples
# Pure Python, so one stage. It serves through finance/serving.py, the harness the examples share,
# and needs what that needs (finance/requirements.txt). It writes nothing at run time (bytecode is
# compiled here), runs as a numeric non-root user, and so works with readOnlyRootFilesystem and
# runAsNonRoot.
# Where no registry is reachable, hack/build-images.sh passes a base made here from Debian.
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="stepline-manufacturing-quality-inspection" \
      org.opencontainers.image.description="Passes or fails each lot from its sample measurements (Stepline manufacturing example)." \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="Stepline"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY finance/requirements.txt /app/requirements.txt
RUN pip install --no-cache-dir -r /app/requirements.txt
COPY finance/__init__.py finance/serving.py /app/finance/
COPY manufacturing/__init__.py manufacturing/parsing.py manufacturing/quality_inspection.py /app/manufacturing/
RUN python -m compileall -q /app/finance /app/manufacturing

USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["python", "-m", "manufacturing.quality_inspection"]
CMD ["--port", "8080"]
