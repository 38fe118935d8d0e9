"""The finance example's step services: user-validation and order-processing.

Run one from the `examples/` directory: `python -m finance.user_validation --port 9001`.
"""
