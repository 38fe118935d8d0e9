"""The smart-city example's step services: traffic-flow, air-quality and service-complaints,
which read one city's morning side by side, and city-report, which joins their answers. They
serve through `finance.serving`, the one step-service harness the examples share, and read their
requests with `manufacturing.parsing` (Idempotency-Key, /healthz, /metrics, the command line;
fields named in every 400).

Run one from the `examples/` directory: `python -m city.traffic_flow --port 9021`.
"""
