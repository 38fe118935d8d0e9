"""The operator's HTTP side: synchronous invoke of a workflow (its callers authenticated and
authorised by the API server: `authorizing`), /metrics and /healthz."""
