"""The README's sequence diagram is the one the code draws."""

from __future__ import annotations

import re
from pathlib import Path

from orchestrator.cli import main
from orchestrator.diagram import mermaid
from orchestrator.flow import FLOW

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_embeds_the_generated_diagram() -> None:
    text = README.read_text()
    embedded = re.search(r"<!-- diagram:start -->\n```mermaid\n(.*?)```\n<!-- diagram:end -->", text, re.S)
    assert embedded is not None, "README lost its diagram markers"
    assert embedded.group(1) == mermaid(), "README diagram is stale: paste the output of `syncorders diagram`"


def test_diagram_numbers_all_eleven_steps_in_order() -> None:
    numbers = [int(n) for n in re.findall(r": (\d+)\. ", mermaid().split("Order creation")[1])]
    assert numbers == list(range(1, 12))


def test_diagram_command_prints_it(capsys) -> None:
    assert main(["diagram"]) == 0
    assert capsys.readouterr().out == mermaid()


def test_flow_is_the_eleven_steps_of_the_design_in_order() -> None:
    assert [step.number for step in FLOW] == list(range(1, 12))
    assert [step.name for step in FLOW if step.action] == [
        "authorize",
        "create_order",
        "pay",
        "update_status",
        "notify",
        "respond",
    ]
    for step in FLOW:
        if step.action is not None:
            assert f"{step.number}. " in (step.action.__doc__ or ""), f"{step.name} does not quote its sentence"
