"""The operator's HTTP side: synchronous invoke of a workflow, /metrics and /healthz."""
