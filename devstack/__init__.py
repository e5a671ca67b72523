"""The local stack: each real part of the pipeline configured, started and health-checked on one machine.

``python -m devstack up|down|status|demo`` (``make up``/``down``/``status``/``demo``) hands the parts to
supervisord; the test fixtures and the benchmarks import the same modules to run a broker, a Redis or a
monitoring part of their own on free loopback ports. One module per concern:

- ``paths``: where the checkout, its state, its dependencies and its venv are
- ``ports``: free and taken ports, and the port variables the stack honours
- ``processes``: one process for the length of a ``with`` block, and waiting on conditions
- ``kafka_broker``, ``redis_server``, ``postgres_server``: one service each
- ``spark``: spark-submit commands with the project's connector jars and Spark defaults
- ``monitoring``: statsd_exporter, redis_exporter, Prometheus, Alertmanager and the mail sink
- ``airflow_parts``: Airflow's components, their health, secrets and metadata DB migration
- ``airflow_api``: the running Airflow's REST API, as the local admin
- ``demo``: what ``make demo`` runs on the stack: trigger the pipeline, wait, show the counts
- ``supervisor``: the supervisord configuration and control
- ``stack``: which parts make the stack, and bringing it up and down
- ``__main__``: the command line

A part is described by what it needs (a folder, ports) rather than by global state, so a topology with more
brokers, or a Spark master and workers, is more instances of the same classes.
"""
