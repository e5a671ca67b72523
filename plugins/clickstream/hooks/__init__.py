"""Hooks of the clickstream plugin."""
