"""The benchmark's report: a table per variant, the comparisons that answer its
questions (what the hops, tracing and each client cost; what queues where), the
targets, one summary table, and the plot."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import attrs

from orchestrator.flow import FLOW
from orchestrator.tools.bench.measure import Level, Results, Variant

OPEN = "open"
# The calls one order makes between services: the gateway's to Orders (create, then the
# status), Billing and Notifications, and Notifications' to Profiles. With the
# client's own request, six HTTP requests in a row.
INTERNAL_CALLS = 5
REQUESTS_PER_ORDER = INTERNAL_CALLS + 1
# The targets the README states.
TARGETS = {
    "fast_p50": 3.0,
    "fast_p99": 8.0,
    "fast_cpu": 3.0,
    "waitress_p50": 5.0,
    "waitress_cpu": 4.5,
    "rss": 60.0,
    "tracing": 0.05,
    "pycurl": 0.03,
}


@attrs.frozen
class Floor:
    """The trivial route on one server: loads by concurrency, the server's CPU per request."""

    loads: dict[int, Level]
    cpu_us: dict[int, float]


# Where a request waits for one of a server's threads.
QUEUES = {"waitress": "waitress's task queue", "granian": "granian's queue for a Python thread"}


def _label(key: Any) -> str:
    return f"c={key}" if key != OPEN else "open"


def _ms(value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


@attrs.frozen
class Report:
    levels: list[int]
    results: dict[Variant | None, Results]
    floors: dict[str, Floor]
    database: str
    open_fraction: float

    # -- look-ups ----------------------------------------------------------------------

    def _base(self, server: str, traced: bool = True, composed: bool = False) -> Variant | None:
        """The server's first distributed variant (its default client), or its untraced
        or composed counterpart."""
        for variant in self.results:
            if variant is None or variant.server != server:
                continue
            if variant.composed == composed and variant.traced == traced:
                return variant
        return None

    def _servers(self) -> list[str]:
        seen: list[str] = []
        for variant in self.results:
            if variant is not None and variant.server not in seen:
                seen.append(variant.server)
        return seen

    def _rate(self, variant: Variant | None, level: Any) -> float:
        result = self.results[variant].loads.get(level) if variant in self.results else None
        return result.throughput if result is not None else float("nan")

    def _p(self, variant: Variant | None, level: Any, fraction: float) -> float:
        result = self.results[variant].loads.get(level) if variant in self.results else None
        return result.percentile(fraction) if result is not None else float("nan")

    def _cpu(self, variant: Variant | None, level: Any) -> float:
        return self.results[variant].cpu_per_order(level) if variant in self.results else float("nan")

    # -- the text ----------------------------------------------------------------------

    def text(self) -> str:
        parts = [self._floors(), *(self._variant(variant) for variant in self.results)]
        parts += [self._comparisons(), self._summary(), self._targets()]
        return "\n".join(part for part in parts if part)

    def _floors(self) -> str:
        if not self.floors:
            return ""
        lines = [
            "",
            "Trivial Falcon JSON route on each server (the floor under any request):",
            f"{'server':<9} {'conc':>5} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} "
            f"{'server CPU us/req':>17} {'loadgen CPU':>11}",
        ]
        for server, floor in self.floors.items():
            for level, result in floor.loads.items():
                lines.append(
                    f"{server:<9} {level:>5} {result.throughput:>8.0f} {result.percentile(0.5):>7.2f} "
                    f"{result.percentile(0.99):>7.2f} {result.errors:>6} {floor.cpu_us[level]:>17.0f} "
                    f"{result.cpu_share:>10.0%}"
                )
        for server, floor in self.floors.items():
            if 1 in floor.loads:
                p50 = floor.loads[1].percentile(0.5)
                lines.append(
                    f"  floor of an order at concurrency 1 on {server}: {REQUESTS_PER_ORDER} x trivial p50 = "
                    f"{REQUESTS_PER_ORDER * p50:.2f} ms"
                )
        return "\n".join(lines)

    def _variant(self, variant: Variant | None) -> str:
        run = self.results[variant]
        name = variant.name if variant is not None else "the running gateway"
        shape = "one process" if variant is not None and variant.composed else "six processes"
        lines = [
            "",
            f"POST /orders, {name} ({shape}, {self.database}):",
            f"{'load':>5} {'orders/s':>9} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'p99.9 ms':>8} {'errors':>6} "
            f"{'CPU ms/order':>12} {'queued ms':>9} {'loadgen CPU':>11}",
        ]
        for key, result in run.loads.items():
            label = f"{key}" if key != OPEN else "open"
            lines.append(
                f"{label:>5} {result.throughput:>9.1f} {_ms(result.percentile(0.5)):>7} "
                f"{_ms(result.percentile(0.95)):>7} {_ms(result.percentile(0.99)):>7} "
                f"{_ms(result.percentile(0.999)):>8} {result.errors:>6} {_ms(run.cpu_per_order(key)):>12} "
                f"{_ms(result.queued_ms):>9} {result.cpu_share:>10.0%}"
            )
            if result.error_kinds:
                lines.append(f"       errors: {result.error_kinds}")
        opened = run.loads.get(OPEN)
        if opened is not None and opened.rate:
            lines.append(
                f"  open loop: {opened.rate:.0f} orders/s planned ({self.open_fraction:.0%} of the best closed-loop "
                f"rate) on up to {opened.concurrency} connections, latency from each order's planned start; "
                f"{opened.late} started more than 1 ms late (at most {opened.latest_ms:.1f} ms)"
            )
        lines.append("  mean ms per step (1 = client<->gateway: the wire and the wait for a thread):")
        for key, result in run.loads.items():
            cells = [f"1:{result.queued_ms:.2f}"]
            cells += [f"{step.number}:{result.steps.get(f's{step.number}', 0.0):.2f}" for step in FLOW[1:]]
            lines.append(f"  {_label(key):<6} " + " ".join(cells))
        if run.cpu_ms:
            lines.append("  CPU ms per order, by process (the load generator's apart):")
            for key, by_process in run.cpu_ms.items():
                cells = ", ".join(f"{process} {ms:.2f}" for process, ms in by_process.items())
                lines.append(f"  {_label(key):<6} {cells}; all {sum(by_process.values()):.2f}")
        if run.rss_mb:
            lines.append("  RSS after the run (MB): " + ", ".join(f"{p} {mb:.1f}" for p, mb in run.rss_mb.items()))
        lines.append(f"  orders neither paid nor cancelled afterwards: {run.unfinished}")
        return "\n".join(lines)

    def _comparisons(self) -> str:
        lines = ["", "What it costs:"]
        level = 8 if 8 in self.levels else self.levels[-1]
        for server in self._servers():
            spread, one = self._base(server), self._base(server, composed=True)
            if spread is None or one is None:
                continue
            cpu_spread, cpu_one = self._cpu(spread, level), self._cpu(one, level)
            lines.append(
                f"  the hops on {server} ({INTERNAL_CALLS} internal calls per order): CPU per order at c={level} "
                f"{cpu_spread:.2f} ms in six processes, {cpu_one:.2f} ms in one: {cpu_spread - cpu_one:.2f} ms "
                f"({(cpu_spread - cpu_one) / INTERNAL_CALLS:.2f} per call)"
            )
            if 1 in self.levels:
                p_spread, p_one = self._p(spread, 1, 0.5), self._p(one, 1, 0.5)
                alone_spread, alone_one = self._cpu(spread, 1), self._cpu(one, 1)
                # At c=1 the one process has its GIL to itself: the hops' cleanest price.
                lines.append(
                    f"    at c=1: p50 {p_spread:.2f} ms against {p_one:.2f}: {p_spread - p_one:.2f} ms "
                    f"({(p_spread - p_one) / INTERNAL_CALLS:.2f} per call); CPU per order {alone_spread:.2f} "
                    f"against {alone_one:.2f}: {alone_spread - alone_one:.2f} ms "
                    f"({(alone_spread - alone_one) / INTERNAL_CALLS:.2f} per call)"
                )
                lines.append(
                    f"    orders/s at c={level} {self._rate(spread, level):.0f} against {self._rate(one, level):.0f}"
                )
        for server in self._servers():
            on, off = self._base(server), self._base(server, traced=False)
            if on is None or off is None:
                continue
            rate_on, rate_off = self._rate(on, level), self._rate(off, level)
            lines.append(
                f"  tracing on {server}: orders/s at c={level} {rate_on:.0f} traced, {rate_off:.0f} untraced: "
                f"costs {1 - rate_on / rate_off:.1%}; CPU per order {self._cpu(on, level):.2f} against "
                f"{self._cpu(off, level):.2f} ms"
            )
        for server in self._servers():
            clients = [v for v in self.results if v is not None and v.server == server and v.traced and not v.composed]
            if len(clients) < 2:
                continue
            first = clients[0]
            cells = []
            for variant in clients:
                by_process = self.results[variant].cpu_ms.get(level, {})
                callers = sum(by_process.get(name, 0.0) for name in ("gateway", "notifications"))
                cells.append(
                    f"{variant.transport} {self._cpu(variant, level):.2f} (callers {callers:.2f}, "
                    f"{self._rate(variant, level):.0f}/s)"
                )
            lines.append(f"  internal clients on {server}, CPU ms per order at c={level}: " + ", ".join(cells))
            for variant in clients[1:]:
                extra = self._cpu(variant, level) / self._cpu(first, level) - 1
                lines.append(f"    {variant.transport} against {first.transport}: {extra:+.1%} CPU per order")
        top = max(self.levels)
        if top > 16:
            lines.append(f"  queues at c={top}:")
            for variant in self.results:
                if variant is None or variant.composed or not variant.traced:
                    continue
                result = self.results[variant].loads.get(top)
                low = self.results[variant].loads.get(min(self.levels))
                if result is None or low is None:
                    continue
                calls = sum(result.steps.get(f"s{n}", 0.0) for n in (3, 5, 7, 9))
                calls_low = sum(low.steps.get(f"s{n}", 0.0) for n in (3, 5, 7, 9))
                where = QUEUES.get(variant.server, "the server's queue")
                lines.append(
                    f"    {variant.name}: p50 {result.percentile(0.5):.0f} ms; mean {result.queued_ms:.1f} ms before "
                    f"one of the gateway's threads took the order (in {where}), {result.steps.get('app', 0.0):.1f} ms "
                    f"in the gateway's app, of which {calls:.1f} ms in its calls' wire and queues "
                    f"({calls_low:.1f} at c={min(self.levels)})"
                )
        return "\n".join(lines) if len(lines) > 2 else ""

    def _summary(self) -> str:
        lines = [
            "",
            f"Summary ({self.database}; ms; CPU per order over all processes):",
            "| variant | c=1 p50 | c=1 p99 | c=8 orders/s | c=8 CPU/order | c=32 orders/s | c=128 orders/s "
            "| c=128 p99 | open loop orders/s | open p50 / p99 / p99.9 | errors | largest RSS MB |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for variant, run in self.results.items():
            name = variant.name if variant is not None else "running gateway"
            opened = run.loads.get(OPEN)
            errors = sum(result.errors for result in run.loads.values())
            open_cells = (
                f"{opened.throughput:.0f} | {_ms(opened.percentile(0.5))} / {_ms(opened.percentile(0.99))} / "
                f"{_ms(opened.percentile(0.999))}"
                if opened is not None
                else "- | -"
            )
            rss = max(run.rss_mb.values()) if run.rss_mb else float("nan")
            lines.append(
                f"| {name} | {_ms(self._p(variant, 1, 0.5))} | {_ms(self._p(variant, 1, 0.99))} "
                f"| {self._rate(variant, 8):.0f} | {_ms(self._cpu(variant, 8))} | {self._rate(variant, 32):.0f} "
                f"| {self._rate(variant, 128):.0f} | {_ms(self._p(variant, 128, 0.99))} | {open_cells} "
                f"| {errors} | {rss:.0f} |"
            )
        return "\n".join(lines).replace("| nan ", "| - ")

    def _targets(self) -> str:
        bases = {server: self._base(server) for server in self._servers()}
        bases = {server: variant for server, variant in bases.items() if variant is not None}
        if not bases:
            return ""
        lines = ["", "Targets:"]
        if 8 in self.levels and 1 in self.levels:
            fast = max(bases, key=lambda server: self._rate(bases[server], 8))
            variant = bases[fast]
            p50, p99, cpu = self._p(variant, 1, 0.5), self._p(variant, 1, 0.99), self._cpu(variant, 8)
            lines.append(
                f"  the faster server ({variant.name}, by orders/s at c=8): p50 at c=1 {p50:.2f} ms <= "
                f"{TARGETS['fast_p50']}: {_verdict(p50 <= TARGETS['fast_p50'])}; p99 at c=1 {p99:.2f} ms <= "
                f"{TARGETS['fast_p99']}: {_verdict(p99 <= TARGETS['fast_p99'])}; CPU per order at c=8 {cpu:.2f} ms "
                f"<= {TARGETS['fast_cpu']}: {_verdict(cpu <= TARGETS['fast_cpu'])}"
            )
            if "waitress" in bases:
                variant = bases["waitress"]
                p50, cpu = self._p(variant, 1, 0.5), self._cpu(variant, 8)
                lines.append(
                    f"  {variant.name}: p50 at c=1 {p50:.2f} ms <= {TARGETS['waitress_p50']}: "
                    f"{_verdict(p50 <= TARGETS['waitress_p50'])}; CPU per order at c=8 {cpu:.2f} ms <= "
                    f"{TARGETS['waitress_cpu']}: {_verdict(cpu <= TARGETS['waitress_cpu'])}"
                )
        loads = [key for key in (32, 128, OPEN) if any(key in run.loads for run in self.results.values())]
        errors = sum(run.loads[key].errors for run in self.results.values() for key in loads if key in run.loads)
        if loads:
            named = ", ".join(f"c={key}" if key != OPEN else "open loop" for key in loads)
            lines.append(f"  errors at {named}, every variant: {errors}: {_verdict(errors == 0)}")
        unfinished = sum(run.unfinished for run in self.results.values())
        lines.append(f"  orders neither paid nor cancelled: {unfinished}: {_verdict(unfinished == 0)}")
        # The processes as deployed: six, on the default client (the composition is a
        # measuring device; pycurl's own memory is in its line below).
        sizes = {
            (variant.name, process): mb
            for variant, run in self.results.items()
            if variant is not None and not variant.composed and variant.transport == "socket"
            for process, mb in run.rss_mb.items()
        }
        if sizes:
            (name, process), largest = max(sizes.items(), key=lambda item: item[1])
            lines.append(
                f"  the largest process after the run ({process}, {name}): {largest:.1f} MB <= "
                f"{TARGETS['rss']:.0f}: {_verdict(largest <= TARGETS['rss'])}"
            )
        level = 8 if 8 in self.levels else self.levels[-1]
        for server in self._servers():
            on, off = self._base(server), self._base(server, traced=False)
            if on is not None and off is not None:
                cost = 1 - self._rate(on, level) / self._rate(off, level)
                lines.append(
                    f"  tracing on {server}: {cost:.1%} of orders/s at c={level} <= {TARGETS['tracing']:.0%}: "
                    f"{_verdict(cost <= TARGETS['tracing'])}"
                )
        compared = []
        for server in self._servers():
            socket_client, curl = Variant(server, "socket"), Variant(server, "pycurl")
            if socket_client in self.results and curl in self.results:
                extra = self._cpu(curl, level) / self._cpu(socket_client, level) - 1
                grown = max(self.results[curl].rss_mb.values()) - max(self.results[socket_client].rss_mb.values())
                compared.append(extra)
                lines.append(
                    f"  pycurl on {server}: {extra:+.1%} CPU per order at c={level} against the socket client, "
                    f"its largest process {grown:+.0f} MB"
                )
        if compared:
            within = all(extra <= TARGETS["pycurl"] for extra in compared)
            lines.append(
                f"  pycurl within {TARGETS['pycurl']:.0%} of the socket client's CPU per order on every server "
                f"(which would make it the default): {'yes' if within else 'no'}"
            )
        return "\n".join(lines)

    def clean(self) -> bool:
        """No error at any load, and every order finished."""
        return all(
            run.unfinished == 0 and all(result.errors == 0 for result in run.loads.values())
            for run in self.results.values()
        )


def plot(path: str, report: Report) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import NullFormatter
    except ImportError:
        return False
    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(16, 4.8))
    xs = report.levels
    for index, (variant, run) in enumerate(report.results.items()):
        name = variant.name if variant is not None else "running gateway"
        colour = f"C{index}"
        closed = [x for x in xs if x in run.loads]
        left.plot(closed, [run.loads[x].throughput for x in closed], color=colour, marker="o", label=name)
        if run.cpu_ms:
            middle.plot(closed, [run.cpu_per_order(x) for x in closed], color=colour, marker="o")
        for fraction, style in ((0.5, "-"), (0.99, "--")):
            right.plot(closed, [run.loads[x].percentile(fraction) for x in closed], style, color=colour, marker="o")
    # The line styles' key; the colours are the left panel's.
    right.plot([], [], "-", color="grey", label="p50")
    right.plot([], [], "--", color="grey", label="p99")
    left.set(xlabel="concurrency", ylabel="orders per second", xscale="log", title="Throughput of POST /orders")
    middle.set(xlabel="concurrency", ylabel="CPU ms per order, all processes", xscale="log", title="CPU per order")
    right.set(xlabel="concurrency", ylabel="latency, ms", xscale="log", yscale="log", title="Latency of POST /orders")
    for axis in (left, middle, right):
        axis.set_xticks(xs, [str(x) for x in xs])
        axis.xaxis.set_minor_formatter(NullFormatter())
        axis.grid(alpha=0.3)
    middle.set_ylim(bottom=0)
    left.legend(fontsize=7)
    right.legend(fontsize=8)
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True
