"""The unit and component tiers stand alone: collecting them loads nothing the
end-to-end tier needs (processes, an SMTP server, WireMock)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
END_TO_END_ONLY = ("aiosmtpd", "wiremock", "tests.harness", "orchestrator.tools.supervisor")

PROBE = """
import sys, pytest
pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "tests/unit", "tests/component"])
print("LOADED", " ".join(name for name in {names!r} if name in sys.modules))
"""


def test_collecting_the_unit_and_component_tiers_loads_nothing_of_the_end_to_end_tier() -> None:
    probe = PROBE.format(names=END_TO_END_ONLY)
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    [line] = [line for line in done.stdout.splitlines() if line.startswith("LOADED")]
    assert line.split()[1:] == [], f"the unit tier pulled in: {line.removeprefix('LOADED ')}"
