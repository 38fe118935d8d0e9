"""The web view in a real browser (docs/ui.md)."""
