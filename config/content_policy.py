"""The Content-Security-Policy on every response: django-csp's middleware, with the site's policy built once.

django-csp rebuilds the header from ``CONTENT_SECURITY_POLICY`` on every response; the site's policy uses no
nonce and no view changes it but the media files (which set their own header), so the string is the same
each time. A response that a view's decorator changed, or that used a nonce, still goes through django-csp.
"""
from __future__ import annotations

from csp.constants import HEADER
from csp.middleware import CSPMiddleware
from csp.utils import build_policy
from django.conf import settings

PER_RESPONSE = ("_csp_config", "_csp_update", "_csp_replace", "_csp_exempt")


class SitePolicyMiddleware(CSPMiddleware):
    _built: tuple[int, str] | None = None  # (id of the settings' policy, its header)

    def site_policy(self) -> str:
        config = settings.CONTENT_SECURITY_POLICY
        if self._built is None or self._built[0] != id(config):
            self._built = (id(config), build_policy())
        return self._built[1]

    def process_response(self, request, response):
        plain = getattr(request, "_csp_nonce", None) is None and not any(getattr(response, a, None) for a in PER_RESPONSE)
        if not plain or getattr(settings, "CONTENT_SECURITY_POLICY_REPORT_ONLY", None) or (
                settings.DEBUG and response.status_code in (404, 500)):
            return super().process_response(request, response)
        if HEADER not in response:
            response[HEADER] = self.site_policy()
        return response
