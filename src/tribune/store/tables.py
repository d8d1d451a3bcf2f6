"""The schema. Alembic migrations in ``migrations/`` must produce exactly this
(``tests/store/test_migrations.py`` compares them)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in, timezone-aware UTC out, on SQLite too (which forgets)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

users = Table(
    "users",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("username", String(32), nullable=False, unique=True),
    Column("display_name", String(64), nullable=False),
    Column("password_hash", String(256), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(64), primary_key=True),  # sha256 of the cookie value
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("revoked_at", UTCDateTime(), nullable=True),
)

spaces = Table(
    "spaces",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("host_id", String(32), ForeignKey("users.id"), nullable=False),
    Column("title", String(100), nullable=False),
    Column("description", Text(), nullable=False),
    Column("state", String(16), nullable=False),
    Column("allow_guests", Boolean(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("scheduled_start", UTCDateTime(), nullable=True),
    Column("started_at", UTCDateTime(), nullable=True),
    Column("ended_at", UTCDateTime(), nullable=True),
    Column("total_listeners", Integer(), nullable=True),
    Index("ix_spaces_state", "state"),
)


def _space_fk() -> ForeignKey:
    return ForeignKey("spaces.id", ondelete="CASCADE")


def _user_fk() -> ForeignKey:
    return ForeignKey("users.id", ondelete="CASCADE")


space_members = Table(
    "space_members",
    metadata,
    Column("space_id", String(32), _space_fk(), primary_key=True),
    Column("user_id", String(32), _user_fk(), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("host_muted", Boolean(), nullable=False),
    Column("self_muted", Boolean(), nullable=False),
    Column("joined_at", UTCDateTime(), nullable=False),
)

speak_requests = Table(
    "speak_requests",
    metadata,
    Column("space_id", String(32), _space_fk(), primary_key=True),
    Column("user_id", String(32), _user_fk(), primary_key=True),
    Column("requested_at", UTCDateTime(), nullable=False),
)

invitations = Table(
    "invitations",
    metadata,
    Column("space_id", String(32), _space_fk(), primary_key=True),
    Column("user_id", String(32), _user_fk(), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("invited_by", String(32), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

space_removals = Table(
    "space_removals",
    metadata,
    Column("space_id", String(32), _space_fk(), primary_key=True),
    Column("user_id", String(32), _user_fk(), primary_key=True),
)

reminders = Table(
    "reminders",
    metadata,
    Column("space_id", String(32), _space_fk(), primary_key=True),
    Column("user_id", String(32), _user_fk(), primary_key=True),
    Column("created_at", UTCDateTime(), nullable=False),
)

notifications = Table(
    "notifications",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=True),
    Column("user_id", String(32), _user_fk(), nullable=False),
    Column("space_id", String(32), _space_fk(), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_notifications_user_id", "user_id"),
)

reaction_totals = Table(
    "reaction_totals",
    metadata,
    Column("space_id", String(32), _space_fk(), primary_key=True),
    Column("reaction", String(32), primary_key=True),
    Column("count", Integer(), nullable=False),
)
