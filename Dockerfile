# The Stepline operator (`stepline run`). Build from the repository root:
#   docker build -t stepline/operator:0.1.0 .
# Two stages: the first builds a wheel and installs it with its dependencies into a virtualenv;
# the second copies only that virtualenv onto the same slim base, so no compiler, pip cache or
# source tree ships. Bytecode is compiled at build time and nothing is written at run time, so the
# image runs under the chart's restricted securityContext (runAsNonRoot, readOnlyRootFilesystem).
# Pin the base by digest in release builds: python:3.11-slim-bookworm@sha256:…
# Where no registry is reachable, hack/build-images.sh passes a base made here from Debian.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/stepline
COPY pyproject.toml README.md ./
COPY operator/ operator/
RUN /opt/stepline/bin/pip install --no-cache-dir . \
 && /opt/stepline/bin/python -m compileall -q /opt/stepline

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="stepline-operator" \
      org.opencontainers.image.description="Kubernetes operator that deploys ServiceSteps and runs Workflows of them." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="Stepline" \
      org.opencontainers.image.source="https://github.com/stepline/stepline"
# USER: kopf asks for the user's name when no POD_ID names the operator (docker run, say), and
# the passwd database has no entry for 65532: getpass reads this first.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    USER=stepline \
    PATH=/opt/stepline/bin:$PATH
COPY --from=build /opt/stepline /opt/stepline
# The numeric user the chart's securityContext expects (runAsNonRoot needs a number to check).
USER 65532:65532
# 8080: invoke, /metrics, /healthz; 8081: kopf's liveness /healthz.
EXPOSE 8080 8081
ENTRYPOINT ["stepline"]
CMD ["run"]
