"""Maintenance tools: the procedural generator of the default gallery (`python -m tools.make_assets`):
shapes, drawings and sounds, listed and written with their manifest by `tools.procedural`."""
