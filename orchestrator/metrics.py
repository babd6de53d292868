"""The gateway's flow metrics: each step's duration and outcome, orders by final status."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from orchestrator.flow import Step
from services.common.metrics import BUCKETS

# The label of orders whose flow stopped at a failed step.
STOPPED = "failed"


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

        # Labelled children, looked up once: labels() takes a lock on every call.
        self._children: dict[tuple[int, str], tuple[Any, Any]] = {}

    def observe(self, step: Step, elapsed_ms: float, outcome: str) -> None:
        children = self._children.get((step.number, outcome))
        if children is None:
            number = str(step.number)
            children = self._children[(step.number, outcome)] = (
                self.steps.labels(number, step.name),
                self.outcomes.labels(number, step.name, outcome),
            )
        children[0].observe(elapsed_ms / 1000)
        children[1].inc()

    def finished(self, status: str) -> None:
        self.orders.labels(status).inc()

    def stopped(self) -> None:
        """The flow stopped at a step: the order, if any, is not final yet."""
        self.orders.labels(STOPPED).inc()
