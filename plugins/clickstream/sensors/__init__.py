"""Sensors of the clickstream plugin."""
