"""ASGI entry point for uvicorn/gunicorn: `uvicorn orchestration.serving.asgi:app`."""

from orchestration.serving.app import create_app

app = create_app()
