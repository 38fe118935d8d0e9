"""The web view of workflows and runs, served by the operator under /ui/ (docs/ui.md)."""
