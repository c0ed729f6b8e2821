"""Alembic migrations (a package so that they ship in the wheel); see docs/database.md."""
