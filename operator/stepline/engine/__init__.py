"""Execution of workflows: plan, call, checkpoint. Never imports kopf; talks to the cluster only
through the interfaces it is given."""
