"""Maintenance tools: the procedural generator of the default gallery (`python -m tools.make_assets`)."""
