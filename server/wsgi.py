"""The WSGI entry point for gunicorn (`server.wsgi:app`): the only module-level app."""

from __future__ import annotations

import os

from server.app import create_app
from server.ops.startup import require_public_url

# gunicorn's master checks this first (server/gunicorn_conf.py); other WSGI servers stop here.
require_public_url(os.environ)
app = create_app()
