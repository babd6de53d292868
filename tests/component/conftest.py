"""Component tests: one service's app through falcon.testing, on a fresh SQLite file."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import falcon
import falcon.testing
import pytest

from services.common.config import Settings
from services.common.trust import ServiceTokens


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
