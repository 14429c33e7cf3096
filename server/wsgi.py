"""The WSGI entry point for gunicorn (`server.wsgi:app`): the only module-level app."""

from __future__ import annotations

from server.app import create_app

app = create_app()
