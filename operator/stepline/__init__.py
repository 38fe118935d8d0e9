"""Stepline: run a business process as a chain of autoscaled microservices on Kubernetes."""

import sys

__all__ = ["__version__"]

__version__ = "0.1.0"

# `import httpx` also imports httpx's command line (click, rich, pygments: 4 MiB of the
# operator's resident memory) whenever those are installed, as kopf and the CEL package make
# them. Stepline never runs it. A None entry makes that one import fail (importlib's documented
# way to block a module), and httpx then defines its `main` as a stub that says so.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
