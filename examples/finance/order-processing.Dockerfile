# The order-processing step of the finance example. Build from examples/ (the build context):
#   docker build -f examples/finance/order-processing.Dockerfile -t stepline/finance-order-processing:0.1.0 examples
# Pure Python, so one stage. It writes nothing at run time (bytecode is compiled here), runs as a
# numeric non-root user, and so works with readOnlyRootFilesystem and runAsNonRoot.
# Where no registry is reachable, hack/build-images.sh passes a base made here from Debian.
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="stepline-finance-order-processing" \
      org.opencontainers.image.description="Accepts or rejects an order given the user's risk (Stepline finance example)." \
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
COPY finance/__init__.py finance/serving.py finance/order_processing.py /app/finance/
RUN python -m compileall -q /app/finance

USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["python", "-m", "finance.order_processing"]
CMD ["--port", "8080"]
