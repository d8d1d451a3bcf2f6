"""The operator's switches: attack mode (on, off, auto) and its difficulty.

Not a user's business, so not a user's credentials: one bearer key from the
configuration (TRIBUNE_OPERATOR_KEY). Without it these endpoints are off.
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Request

from tribune.api.schemas import OperatorAttackIn
from tribune.api.services import Services, ServicesDep
from tribune.exceptions import NotAuthenticated, PermissionDenied

router = APIRouter(prefix="/api/operator", tags=["operator"])


def _check(request: Request, services: Services) -> None:
    key = services.runtime.settings.operator_key
    if key is None:
        raise PermissionDenied(
            "the operator endpoints are off on this server: set TRIBUNE_OPERATOR_KEY"
        )
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise NotAuthenticated("send 'Authorization: Bearer <operator key>'")
    if not hmac.compare_digest(given.strip().encode(), key.get_secret_value().encode()):
        raise PermissionDenied("that is not this server's operator key")


@router.get("/attack-mode", summary="Attack mode: the setting and the Spaces it is on for")
async def attack_mode(request: Request, services: ServicesDep) -> dict[str, Any]:
    _check(request, services)
    return await services.runtime.attack.status()


@router.put("/attack-mode", summary="Switch attack mode on, off or to auto; set the difficulty")
async def set_attack_mode(
    body: OperatorAttackIn, request: Request, services: ServicesDep
) -> dict[str, Any]:
    """Shared by every worker (through Redis when configured) within half a second.
    ``null`` (or leaving a field out) goes back to the configured default."""
    _check(request, services)
    await services.runtime.attack.set(body.mode, body.pow_bits)
    return await services.runtime.attack.status()
