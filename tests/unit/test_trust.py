"""Service tokens: verified once, trusted only until they expire, only for their caller."""

from __future__ import annotations

import secrets
import time

import falcon
import falcon.testing
import jwt
import pytest

from contracts.operations import Operation
from services.common import trust
from services.common.errors import install

SECRET = secrets.token_hex(32)


class Echo:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"caller": req.context.caller}


@pytest.fixture
def client() -> falcon.testing.TestClient:
    ops = [Operation("GET", "/thing", "thing", "", callers=frozenset({"gateway"}))]
    app = falcon.App(middleware=[trust.TrustMiddleware("billing", SECRET, ops, leeway=0)])
    install(app)
    app.add_route("/thing", Echo())
    return falcon.testing.TestClient(app)


def token(caller: str, exp: float, secret: str = SECRET, target: str = "billing") -> str:
    claims = {"sub": caller, "iss": caller, "aud": trust.audience(target), "iat": int(time.time()), "exp": int(exp)}
    return "Bearer " + jwt.encode(claims, secret, algorithm="HS256")


def test_a_valid_token_names_its_caller(client) -> None:
    header = trust.ServiceTokens(SECRET, "gateway").header("billing")
    assert client.simulate_get("/thing", headers={"Authorization": header}).json == {"caller": "gateway"}


def test_a_token_verified_once_is_refused_once_it_expires(client) -> None:
    header = token("gateway", int(time.time()) + 2)
    assert client.simulate_get("/thing", headers={"Authorization": header}).status_code == 200
    assert client.simulate_get("/thing", headers={"Authorization": header}).status_code == 200
    time.sleep(max(0.0, int(time.time()) + 3 - time.time()))
    assert client.simulate_get("/thing", headers={"Authorization": header}).status_code == 401


def test_other_secret_target_or_caller_is_refused(client) -> None:
    for header, status in [
        (token("gateway", time.time() + 30, secret=secrets.token_hex(32)), 401),
        (token("gateway", time.time() + 30, target="orders"), 401),
        (token("notifications", time.time() + 30), 403),
    ]:
        assert client.simulate_get("/thing", headers={"Authorization": header}).status_code == status


def test_the_service_token_command_prints_a_token_the_target_takes_from_that_caller(
    client, monkeypatch, capsys, tmp_path
) -> None:
    from orchestrator.tools.cli import main

    monkeypatch.setenv("SYNCORDERS_DATA_DIR", str(tmp_path))
    (tmp_path / "service-secret").write_text(SECRET)
    assert main(["service-token", "billing", "--caller", "gateway"]) == 0
    printed = capsys.readouterr().out.strip()
    assert client.simulate_get("/thing", headers={"Authorization": f"Bearer {printed}"}).json == {"caller": "gateway"}

    assert main(["service-token", "billing", "--caller", "auth"]) == 0
    other = capsys.readouterr().out.strip()
    assert client.simulate_get("/thing", headers={"Authorization": f"Bearer {other}"}).status_code == 403


def test_the_service_token_command_makes_no_secret_of_its_own(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("SYNCORDERS_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("SYNCORDERS_SERVICE_SECRET", raising=False)
    from orchestrator.tools.cli import main

    with pytest.raises(SystemExit, match="no service secret"):
        main(["service-token", "orders", "--caller", "gateway"])
    assert list(tmp_path.iterdir()) == []
