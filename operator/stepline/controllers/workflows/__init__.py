"""Workflows: kopf's event handler (`handlers`), which refreshes a Workflow's status whenever it
or a ServiceStep it references changes; the status itself is computed in `status`.
"""
