"""Stepline: run a business process as a chain of autoscaled microservices on Kubernetes."""

__all__ = ["__version__"]

__version__ = "0.1.0"
