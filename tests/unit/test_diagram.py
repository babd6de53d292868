"""The README's sequence diagram is the one the code draws."""

from __future__ import annotations

import re
from pathlib import Path

from orchestrator.flow import CALLEE, FLOW
from orchestrator.tools.cli import main
from orchestrator.tools.diagram import mermaid

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_embeds_the_generated_diagram() -> None:
    text = README.read_text()
    embedded = re.search(r"<!-- diagram:start -->\n```mermaid\n(.*?)```\n<!-- diagram:end -->", text, re.S)
    assert embedded is not None, "README lost its diagram markers"
    assert embedded.group(1) == mermaid(), "README diagram is stale: paste the output of `syncorders diagram`"


def test_diagram_numbers_every_step_in_order() -> None:
    numbers = [int(n) for n in re.findall(r": (\d+)\. ", mermaid().split("Order creation")[1])]
    assert numbers == [step.number for step in FLOW] == list(range(1, len(FLOW) + 1))


def test_diagram_command_prints_it(capsys) -> None:
    assert main(["diagram"]) == 0
    assert capsys.readouterr().out == mermaid()


def _plain(text: str) -> str:
    return " ".join(text.split())


def test_each_action_quotes_its_steps_sentence_and_its_callees() -> None:
    """The module reads like the design: each action's docstring is its step's sentence,
    numbered, and for a call, the sentence of the step the callee performs."""
    for step in FLOW:
        if step.action is None:
            continue
        doc = _plain(step.action.__doc__ or "")
        assert _plain(f"{step.number}. {step.sentence}") in doc, f"{step.name} does not quote its sentence"
        callee = CALLEE.get(step)
        if callee is not None:
            assert _plain(f"{callee.number}. {callee.sentence}") in doc, f"{step.name} does not quote {callee.name}"


def test_the_steps_listing_gives_each_step_in_the_designs_words(capsys) -> None:
    assert main(["diagram", "--steps"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(FLOW)
    for line, step in zip(lines, FLOW, strict=True):
        assert line.startswith(f"{step.number:>2}. [") and line.endswith(step.sentence)
    assert lines[4] == " 5. [Gateway → Billing] The gateway sends a payment request to Billing."
