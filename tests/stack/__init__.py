"""Smoke tests of a running stack (docker compose up), by URL: pytest tests/stack."""
