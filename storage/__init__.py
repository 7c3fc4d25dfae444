"""Persistence: SQLModel tables, engine, queries and Alembic migrations."""
