"""Component tests: one service's app through falcon.testing, on a fresh SQLite file."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import attrs
import falcon
import falcon.testing
import pytest

from services.common.config import Settings
from services.common.db import Store
from services.common.trust import ServiceTokens

S = TypeVar("S", bound=Store)


class ServiceCaller:
    """Calls an app in-process as another service would, with its service token."""

    def __init__(self, app: falcon.App, settings: Settings, service: str, caller: str) -> None:
        self.app, self.settings, self.service = app, settings, service
        self.client = falcon.testing.TestClient(app)
        self.header = ServiceTokens(settings.secret(), caller).header(service)

    def calling_as(self, caller: str) -> ServiceCaller:
        """The same app, called by another service."""
        return ServiceCaller(self.app, self.settings, self.service, caller)

    def __call__(self, method: str, path: str, **kwargs: Any) -> falcon.testing.Result:
        headers = {"Authorization": self.header, **kwargs.pop("headers", {})}
        return self.client.simulate_request(method, path, headers=headers, **kwargs)


@pytest.fixture
def make_caller(settings: Settings) -> Callable[..., ServiceCaller]:
    def make(
        create_app: Callable[..., falcon.App], service: str, caller: str = "gateway", **collaborators: Any
    ) -> ServiceCaller:
        return ServiceCaller(create_app(settings, **collaborators), settings, service, caller)

    return make


@pytest.fixture
def open_store(settings: Settings, tmp_path: Path) -> Iterator[Callable[[type[S]], S]]:
    """Opens a service's store on a SQLite file apart from the one ``settings`` name, to
    give to its app; each is closed after the test."""
    opened: list[Store] = []

    def open_(kind: type[S]) -> S:
        url = f"sqlite:///{tmp_path / 'given' / kind.service}.db"
        store = kind.open(attrs.evolve(settings, databases={kind.service: url}))
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


def settings_file(settings: Settings, service: str) -> Path:
    """The SQLite file ``settings`` name for the service, which an app given a store of
    its own never makes."""
    return Path(settings.database(service).split(":///", 1)[1])
