"""The gateway's flow metrics: each step's duration and outcome, orders by final status."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from orchestrator.flow import Step
from services.common.metrics import BUCKETS


class FlowMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.steps = Histogram(
            "syncorders_flow_step_duration_seconds",
            "Time the gateway spent in each step of the order flow",
            ["step", "name"],
            buckets=BUCKETS,
            registry=registry,
        )
        self.outcomes = Counter(
            "syncorders_flow_step_outcomes",
            "Steps of the order flow by outcome (ok or the failure reason)",
            ["step", "name", "outcome"],
            registry=registry,
        )
        self.orders = Counter(
            "syncorders_orders",
            "Orders answered by the flow, by final status (failed: the flow stopped)",
            ["status"],
            registry=registry,
        )

    def observe(self, step: Step, elapsed_ms: float, outcome: str) -> None:
        self.steps.labels(str(step.number), step.name).observe(elapsed_ms / 1000)
        self.outcomes.labels(str(step.number), step.name, outcome).inc()

    def finished(self, status: str) -> None:
        self.orders.labels(status).inc()
