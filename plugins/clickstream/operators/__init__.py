"""Operators of the clickstream plugin."""
