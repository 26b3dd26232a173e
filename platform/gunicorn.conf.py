# Gunicorn settings for the web service; every value can be overridden from the environment.
import multiprocessing
import os

workers = int(os.environ.get("WEB_WORKERS", min(4, multiprocessing.cpu_count() * 2)))
threads = int(os.environ.get("WEB_THREADS", 4))
worker_class = "gthread"
timeout = int(os.environ.get("WEB_TIMEOUT", 120))  # streaming exports of large projects take a while
graceful_timeout = 30
keepalive = 5
accesslog = os.environ.get("WEB_ACCESS_LOG", "-")
errorlog = "-"
max_requests = 2000
max_requests_jitter = 200
# Load the app (config/wsgi.py imports every view) in the master, before forking: a new worker, at start or
# after max_requests, serves its first request warm. Code changes need a restart, not a HUP.
preload_app = True
# X-Forwarded-Proto is believed only from these addresses (the proxy): gunicorn's own setting, read from
# FORWARDED_ALLOW_IPS, default 127.0.0.1,::1; docker-compose.yml sets the proxy's fixed address.
# The longest request line gunicorn reads (its maximum); Django answers a URI over TAGRANK_MAX_URI_BYTES (4094)
# with 414, as JSON under /api/, where gunicorn's own 414 would be a bare page.
limit_request_line = 8190
