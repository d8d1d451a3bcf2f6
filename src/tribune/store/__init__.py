"""Durable data: SQLAlchemy 2 (async), SQLite by default, PostgreSQL when configured."""
