"""The finance example's step services: user-validation, order-processing, trade-settlement,
and order-cancellation, which undoes an order whose trade failed (the Workflow's compensation).

Run one from the `examples/` directory: `python -m finance.user_validation --port 9001`.
"""
