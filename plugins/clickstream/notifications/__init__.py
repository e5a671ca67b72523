"""Notifications: what the pipeline sends people when something needs them."""
