"""The server's Prometheus metrics, in a registry of their own (several apps in one process stay apart)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    """Every metric `bridge serve` exposes on /metrics (names as docs/server.md lists them)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.syncs = Counter("bridge_syncs", "Connection runs, by outcome.", ["connection", "outcome"], registry=r)
        self.actions = Counter(
            "bridge_actions", "Actions by what became of them.", ["connection", "kind", "state"], registry=r
        )
        self.api_calls = Counter(
            "bridge_api_calls", "Provider API answers, by status.", ["provider", "status"], registry=r
        )
        self.retries = Counter(
            "bridge_retries", "Provider calls made again, by why.", ["provider", "reason"], registry=r
        )
        self.last_success = Gauge(
            "bridge_last_success_timestamp_seconds",
            "When each connection last synced fine.",
            ["connection"],
            registry=r,
        )
        self.queue_lag = Gauge(
            "bridge_queue_lag_seconds", "How late the last run started after it was due.", registry=r
        )
        self.in_doubt = Gauge("bridge_in_doubt", "Ledger entries in doubt, per connection.", ["connection"], registry=r)
        self.webhooks = Counter(
            "bridge_webhooks", "Webhook deliveries, by provider and outcome.", ["provider", "outcome"], registry=r
        )
        self.link_dead = Gauge(
            "bridge_link_dead",
            "1 while a connection is skipped for a dead link (or a refresh token about to expire).",
            ["connection"],
            registry=r,
        )

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
