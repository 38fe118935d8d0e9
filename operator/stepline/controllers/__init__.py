"""The kopf side of Stepline: handlers for ServiceSteps, Workflows and the objects they own.

Handlers are thin. They parse a body into a model, call one function of `deploying` or of the
engine, and map errors to kopf's TemporaryError / PermanentError. `lifecycle.run()` starts it all.
"""

from stepline.controllers.lifecycle import run

__all__ = ["run"]
