"""Clickstream analytics for Apache Airflow 3: Kafka -> Spark Structured Streaming -> Redis."""

__version__ = "0.1.0"
