"""Spark parsing, transforms and sinks of the clickstream pipeline; imported by the applications under include/spark."""
