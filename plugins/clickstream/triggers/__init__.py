"""Triggers of the clickstream plugin."""
