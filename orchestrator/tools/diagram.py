"""The sequence diagram, drawn from the code: the registration chain and the order flow.

Printed by ``syncorders diagram`` as Mermaid; the README embeds it and a test keeps the
two identical.
"""

from __future__ import annotations

from orchestrator.flow import FLOW
from services.auth.logic import REGISTRATION_CHAIN

NAMES = {
    "client": "Client",
    "gateway": "Gateway",
    "auth": "Auth",
    "profiles": "Profiles",
    "orders": "Orders",
    "billing": "Billing",
    "notifications": "Notifications",
}
CALLEE_ANSWERS = {"profiles": "201 profile", "billing": "201 wallet"}


def _arrow(actor: str, target: str, text: str) -> str:
    # A service answering its caller is drawn dashed, as a reply.
    dashed = actor != target and (target == "client" or (target == "gateway" and actor != "client"))
    return f"    {NAMES[actor]}{'-->>' if dashed else '->>'}{NAMES[target]}: {text}"


def steps_text() -> str:
    """The flow's steps, numbered, each in the design's words, and who performs it."""
    lines = []
    for step in FLOW:
        performer = NAMES[step.actor] + (f" → {NAMES[step.target]}" if step.target else "")
        lines.append(f"{step.number:>2}. [{performer}] {step.sentence}")
    return "\n".join(lines) + "\n"


def mermaid() -> str:
    lines = [
        "sequenceDiagram",
        "    actor Client",
        "    participant Gateway as API Gateway",
        *(f"    participant {NAMES[name]}" for name in ("auth", "profiles", "orders", "billing", "notifications")),
        "    Note over Client,Notifications: Registration",
        _arrow("client", "gateway", "POST /auth/register"),
        _arrow("gateway", "auth", "POST /users"),
    ]
    for number, actor, target, text in REGISTRATION_CHAIN:
        lines.append(_arrow(actor, target, f"{number}. {text}"))
        if target in CALLEE_ANSWERS:
            lines.append(f"    {NAMES[target]}-->>{NAMES[actor]}: {CALLEE_ANSWERS[target]}")
    lines += [
        "    Auth-->>Gateway: 201 user",
        "    Gateway-->>Client: 201 user",
        "    Note over Client,Notifications: Order creation (the eleven steps)",
    ]
    for step in FLOW:
        target = step.target or step.actor
        lines.append(_arrow(step.actor, target, f"{step.number}. {step.label}"))
        for source, destination, text in step.returns:
            lines.append(f"    {NAMES[source]}-->>{NAMES[destination]}: {text}")
    return "\n".join(lines) + "\n"
