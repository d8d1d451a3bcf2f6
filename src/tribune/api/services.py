"""The services a request can reach, hung on ``app.state.services``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from tribune.service.accounts import Accounts
from tribune.service.runtime import Runtime
from tribune.service.spaces import Spaces


@dataclass
class Services:
    runtime: Runtime
    accounts: Accounts
    spaces: Spaces

    @classmethod
    def build(cls, runtime: Runtime) -> Services:
        return cls(runtime, Accounts(runtime), Spaces(runtime))


async def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(_services)]
