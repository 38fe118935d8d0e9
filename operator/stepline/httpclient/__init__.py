"""The HTTP client of step calls: one POST of JSON bytes behind the one-method `Transport`
(`transports`), the operator's own HTTP/1.1 connection pool (`pooling`, `connections`), and
the errors that end a call without an answer (`errors`). It knows nothing of steps, retries or
JSON: the engine's step client (`engine.calling`) does.
"""
