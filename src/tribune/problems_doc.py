"""Text for the top of the OpenAPI document."""

DESCRIPTION = """
Tribune's control plane: accounts, Spaces, the stage, listeners.

**Authentication.** Browsers log in (`POST /api/session`) and get an HttpOnly session
cookie; every cookie-authenticated write must send `X-CSRF-Token` with the `csrf_token`
from log-in. Programs create an API token (`POST /api/tokens`) and send
`Authorization: Bearer tbt_...`. Joining a Space returns a listener token
(`tbl_...`, also a bearer token) for heartbeats and reactions; guests get one too when the
host allows guests.

**Errors** are `application/problem+json` (RFC 9457): `type`, `title`, `status`,
`detail` (a sentence saying what was wrong), and `errors` for field-level problems.
`429` answers carry `Retry-After`.
"""
