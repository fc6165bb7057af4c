"""Delivery: serving a publish root (and collecting telemetry) over HTTP."""
