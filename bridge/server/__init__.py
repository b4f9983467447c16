"""Server mode (`bridge serve`): the schedule, the dispatcher, webhooks, health and metrics over one HTTP port.

Every driver (the embedded worker threads here, a Celery worker elsewhere) runs a connection through
one function, `bridge.server.jobs.run_connection`, which calls the CLI's own `bridge.sync.sync`.
"""
