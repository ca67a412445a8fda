"""The PostgreSQL edge: every asyncpg call of the service lives under this package."""
