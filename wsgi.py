"""WSGI entry point: ``gunicorn wsgi:app``."""

from infomediary import create_app

app = create_app()
