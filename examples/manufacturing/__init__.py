"""The manufacturing example's step services: device-monitoring, production-scheduling and
quality-inspection. They serve through `finance.serving`, the one step-service harness the
examples share (Idempotency-Key, /healthz, /metrics, the command line).

Run one from the `examples/` directory: `python -m manufacturing.device_monitoring --port 9011`.
"""
