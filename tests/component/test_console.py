"""The operator console's HTTP side in-process: who may see it (on the page, a static
file and every API route), the headers that keep the page to itself, the runs API's
queries, and the files it serves and refuses."""

from __future__ import annotations

import base64
import json
import re
import uuid

import falcon.testing
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contracts import gateway as wire
from contracts import openapi
from orchestrator.auth import ClientAuth
from orchestrator.console import ROUTES, RunStore, add_console
from orchestrator.console.resources import STATIC
from orchestrator.tokens import TokenVerifier
from services.common.web import base_app
from tests.console_samples import one_of_each, order_run
from tests.fakes import FakeAuth

SECRET = "s3cret-operator-value"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


OPERATOR = {"Authorization": basic("operator", SECRET)}


class Console:
    """A gateway-like app (the client token check included) with the console on it."""

    def __init__(self, settings) -> None:
        self.auth = FakeAuth(Ed25519PrivateKey.generate())
        verifier = TokenVerifier(self.auth, settings.token_issuer, settings.token_audience, settings.token_leeway, 30.0)
        self.app = base_app("gateway", max_body=65_536, middleware=[ClientAuth(verifier, wire.OPERATIONS)])
        self.store = RunStore()
        self.runs = one_of_each()
        for run in self.runs.values():
            self.store.add(run)
        add_console(self.app, self.store, SECRET)
        self.client = falcon.testing.TestClient(self.app)

    def get(self, path: str, headers: dict[str, str] | None = None, **params: object) -> falcon.testing.Result:
        return self.client.simulate_get(path, headers=headers, params=params or None)

    def api(self, path: str, **params: object) -> falcon.testing.Result:
        return self.get(path, OPERATOR, **params)


@pytest.fixture
def console(settings) -> Console:
    return Console(settings)


def every_route(console: Console) -> list[str]:
    return [
        "/console",
        "/console/static/console.js",
        "/console/api/runs",
        f"/console/api/runs/{console.runs['paid'].id}",
        "/console/api/summary",
    ]


PATHS = ["page", "static", "runs", "run", "summary"]


def path_of(console: Console, which: str) -> str:
    return dict(zip(PATHS, every_route(console), strict=True))[which]


def assert_refused(result: falcon.testing.Result, code: str) -> None:
    assert result.status_code == 401
    assert result.headers["WWW-Authenticate"].startswith('Basic realm="syncorders console"')
    assert result.json["code"] == code and result.json["title"]
    assert result.headers["Content-Security-Policy"] == CSP
    assert "runs" not in result.json


@pytest.mark.parametrize("which", PATHS)
def test_no_credential_is_401_with_a_basic_challenge(console: Console, which: str) -> None:
    assert_refused(console.get(path_of(console, which)), "unauthorized")


@pytest.mark.parametrize("which", PATHS)
def test_a_wrong_secret_is_401(console: Console, which: str) -> None:
    result = console.get(path_of(console, which), {"Authorization": basic("operator", SECRET + "x")})
    assert_refused(result, "invalid_credentials")


@pytest.mark.parametrize("which", PATHS)
def test_the_right_secret_for_another_user_is_401(console: Console, which: str) -> None:
    result = console.get(path_of(console, which), {"Authorization": basic("admin", SECRET)})
    assert_refused(result, "invalid_credentials")


@pytest.mark.parametrize("header", ["Basic !!!not-base64", "Basic " + base64.b64encode(b"no-colon").decode(), "Basic"])
def test_a_malformed_basic_credential_is_401(console: Console, header: str) -> None:
    assert_refused(console.get("/console/api/runs", {"Authorization": header}), "invalid_credentials")


@pytest.mark.parametrize("which", PATHS)
def test_a_customers_bearer_token_is_401(console: Console, which: str) -> None:
    token = console.auth.token(str(uuid.uuid4()))
    result = console.get(path_of(console, which), {"Authorization": f"Bearer {token}"})
    assert_refused(result, "unauthorized")


@pytest.mark.parametrize("which", PATHS)
def test_the_right_secret_is_let_in(console: Console, which: str) -> None:
    result = console.get(path_of(console, which), OPERATOR)
    assert result.status_code == 200, result.text


def test_the_page_is_html_with_a_strict_content_security_policy(console: Console) -> None:
    page = console.api("/console")
    assert page.headers["Content-Type"].startswith("text/html")
    assert page.headers["Content-Security-Policy"] == CSP
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["Cache-Control"] == "no-store"
    assert '<script src="/console/static/console.js"' in page.text


@pytest.mark.parametrize("which", ["runs", "run", "summary"])
def test_api_answers_are_json_never_stored(console: Console, which: str) -> None:
    result = console.api(path_of(console, which))
    assert result.headers["Content-Type"].startswith("application/json")
    assert result.headers["Cache-Control"] == "no-store"
    assert result.headers["Content-Security-Policy"] == CSP
    assert result.headers["X-Content-Type-Options"] == "nosniff"
    assert result.headers["Referrer-Policy"] == "no-referrer"


def test_the_page_has_no_inline_script_style_or_handler_the_policy_would_block() -> None:
    html = (STATIC / "index.html").read_text()
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
    assert "<style" not in html and " style=" not in html
    assert re.findall(r"\son[a-z]+\s*=", html) == []
    assert re.findall(r"(?:src|href)=\"(?:https?:)?//", html) == [], "nothing from another origin"


def test_the_script_never_parses_data_as_markup() -> None:
    script = (STATIC / "console.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, sink
    # setAttribute("style", ...) would be refused by the policy: styles come from classes.
    assert 'setAttribute("style"' not in script and "style=" not in script


@pytest.mark.parametrize(
    ("name", "content_type"),
    [("console.js", "text/javascript"), ("console.css", "text/css"), ("icon.svg", "image/svg+xml")],
)
def test_static_files_have_their_content_type_and_revalidate(console: Console, name: str, content_type: str) -> None:
    first = console.api(f"/console/static/{name}")
    assert first.status_code == 200
    assert first.headers["Content-Type"].startswith(content_type)
    assert first.content == (STATIC / name).read_bytes()
    assert first.headers["Cache-Control"] == "no-cache"
    again = console.get(f"/console/static/{name}", {**OPERATOR, "If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.content == b""


@pytest.mark.parametrize("name", ["nope.js", "index.html", "__init__.py", "console.JS"])
def test_an_unknown_static_file_is_404(console: Console, name: str) -> None:
    result = console.api(f"/console/static/{name}")
    assert result.status_code == 404
    assert result.json["code"] == "not_found"


@pytest.mark.parametrize(
    "path",
    [
        "/console/static/..%2F__init__.py",
        "/console/static/..%2f..%2fauth.py",
        "/console/static/%2e%2e%2fresources.py",
        "/console/static/../__init__.py",
        "/console/static/..%5C__init__.py",
        "/console/static/static%2Fconsole.js",
        "/console/static/%2e%2e",
        "/console/static/.",
        "/console/static/__pycache__",
    ],
)
def test_path_traversal_out_of_the_static_folder_is_refused(console: Console, path: str) -> None:
    result = console.api(path)
    assert result.status_code == 404
    assert b"import" not in result.content


def test_an_unknown_run_is_404_in_the_one_error_shape(console: Console) -> None:
    result = console.api("/console/api/runs/no-such-run")
    assert result.status_code == 404
    assert result.json["code"] == "not_found" and result.json["title"] == "Run not found"
    assert result.headers["Cache-Control"] == "no-store"


def test_one_run_is_served_whole(console: Console) -> None:
    run = console.store.get(console.runs["stopped"].id)
    body = console.api(f"/console/api/runs/{run.id}").json
    assert body["seq"] == run.seq and body["outcome"] == "stopped"
    assert body["stopped"] == {"step": 5, "step_name": "pay", "code": "pay_failed", "reason": "unavailable"}
    failed = [call for call in body["calls"] if call["failed"]]
    assert [(call["target"], call["status"], call["code"]) for call in failed] == [
        ("billing", 503, "database_unavailable")
    ]
    assert [step["number"] for step in body["steps"]] == [2, 3, 4, 5, 6]


def test_the_list_is_newest_first_brief_and_says_the_last_seq(console: Console) -> None:
    body = console.api("/console/api/runs").json
    seqs = [run["seq"] for run in body["runs"]]
    assert seqs == sorted(seqs, reverse=True) and len(seqs) == len(console.runs)
    assert body["last"] == len(console.runs)
    assert all("calls" not in run and "steps" not in run for run in body["runs"])


def test_polling_after_the_last_seq_gives_only_new_runs(console: Console) -> None:
    last = console.api("/console/api/runs").json["last"]
    assert console.api("/console/api/runs", after=last).json == {"runs": [], "last": last}
    new = order_run()
    console.store.add(new)
    body = console.api("/console/api/runs", after=last).json
    assert [run["id"] for run in body["runs"]] == [new.id] and body["last"] == last + 1


def test_older_pages_outcome_filter_search_and_limit(console: Console) -> None:
    runs = console.runs
    older = console.api("/console/api/runs", before=3, limit=5).json["runs"]
    assert [run["seq"] for run in older] == [2, 1]
    paid = console.api("/console/api/runs", outcome="paid").json["runs"]
    assert {run["id"] for run in paid} == {runs["paid"].id, runs["script"].id}
    found = console.api("/console/api/runs", q=runs["replay"].trace_id[:10]).json["runs"]
    assert [run["id"] for run in found] == [runs["replay"].id]
    by_key = console.api("/console/api/runs", q="<img src=x onerror=alert(1)>").json["runs"]
    assert [run["id"] for run in by_key] == [runs["img"].id]
    assert len(console.api("/console/api/runs", limit=2).json["runs"]) == 2


def test_a_replay_is_served_with_its_first_run(console: Console) -> None:
    body = console.api(f"/console/api/runs/{console.runs['replay'].id}").json
    assert body["replayed"] is True and body["replay_of"] == console.runs["stopped"].id


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "0"},
        {"limit": "201"},
        {"limit": "ten"},
        {"after": "-1"},
        {"before": "1.5"},
        {"after": "9" * 40},
        {"outcome": "lost"},
        {"q": "x" * 201},
    ],
)
def test_a_bad_runs_query_is_422_saying_which(console: Console, query: dict[str, str]) -> None:
    result = console.api("/console/api/runs", **query)
    assert result.status_code == 422
    assert result.json["code"] == "validation_failed"
    assert next(iter(query)) in result.json["description"]


def test_summary_gives_percentiles_per_step_over_the_last_orders(console: Console) -> None:
    body = console.api("/console/api/summary", last=3).json
    assert body["runs"] == 3
    assert set(body["total"]) == {"count", "p50_ms", "p99_ms"}
    assert all(set(step) == {"number", "name", "count", "p50_ms", "p99_ms"} for step in body["steps"])
    whole = console.api("/console/api/summary").json
    # One of each: nine orders and a registration, which is left out.
    assert whole["runs"] == 9 and whole["total"]["count"] == 9


@pytest.mark.parametrize("last", ["0", "10001", "all"])
def test_a_bad_summary_query_is_422(console: Console, last: str) -> None:
    result = console.api("/console/api/summary", last=last)
    assert result.status_code == 422 and "last" in result.json["description"]


def test_the_console_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="operator secret"):
        add_console(falcon.App(), RunStore(), "")


def test_the_console_is_not_in_the_public_openapi_document() -> None:
    document = json.loads(openapi.path_of("gateway").read_text())
    assert [path for path in document["paths"] if path.startswith("/console")] == []
    assert all(not op.path.startswith("/console") for op in openapi.SERVICES["gateway"])
    assert all(route.startswith("/console") for route in ROUTES)


def test_the_client_token_check_still_guards_the_gateways_own_routes(console: Console) -> None:
    class Private:
        def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
            resp.media = {"secret": True}

    console.app.add_route("/orders", Private())
    result = console.get("/orders", OPERATOR)
    assert result.status_code == 401 and result.headers["WWW-Authenticate"].startswith("Bearer")
