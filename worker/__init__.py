"""Tagrank's Celery app: ``celery -A worker worker -Q gpu,default``."""
from .app import app

__all__ = ["app"]
