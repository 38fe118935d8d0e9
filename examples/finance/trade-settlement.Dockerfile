# The trade-settlement step of the finance example. Build from examples/ (the build context):
#   docker build -f examples/finance/trade-settlement.Dockerfile -t stepline/finance-trade-settlement:0.1.0 examples
# Pure Python, so one stage. It serves through finance/serving.py and reads its request with
# manufacturing/parsing.py, the helpers the examples share, and needs what those need
# (finance/requirements.txt). It writes nothing at run time (bytecode is compiled here), runs as a
# numeric non-root user, and so works with readOnlyRootFilesystem and runAsNonRoot.
# Where no registry is reachable, hack/build-images.sh passes a base made here from Debian.
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="stepline-finance-trade-settlement" \
      org.opencontainers.image.description="Settles an accepted order against the trader's account (Stepline finance example)." \
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
COPY finance/__init__.py finance/serving.py finance/trade_settlement.py /app/finance/
COPY manufacturing/__init__.py manufacturing/parsing.py /app/manufacturing/
RUN python -m compileall -q /app/finance /app/manufacturing

USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["python", "-m", "finance.trade_settlement"]
CMD ["--port", "8080"]
