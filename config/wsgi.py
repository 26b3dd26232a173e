import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()
# Import the URLconf, and with it every view, while the server boots (once, in gunicorn's master, with
# preload_app), not inside the first request that each worker serves: that import takes over a second.
get_resolver().url_patterns
