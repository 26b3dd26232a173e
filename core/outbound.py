"""Outbound HTTP: the server fetches only public http(s) addresses (no SSRF into its own network).

``check_url`` refuses a URL whose scheme is not http(s) or whose host resolves to a loopback, private,
link-local, site-local, multicast, reserved or unspecified address, or to an IPv6 address that carries such
an IPv4 address (NAT64, IPv4-compatible) or tunnels to one (6to4, Teredo: refused whatever they carry); call it when a URL is registered, for a clear
error. ``open_url`` fetches through connections that check the address they actually connected to
(DNS may have changed since registration) and re-check every redirect hop (or follow none). With
``TAGRANK_OUTBOUND_ALLOW_PRIVATE`` true (a closed network, tests) only the scheme is checked.
Environment proxies are not used: the check must see the address that the request goes to.
"""
from __future__ import annotations

import http.client
import ipaddress
import socket
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from django.conf import settings

from core.refusals import Refusal

SCHEMES = ("http", "https")


class OutboundRefused(Refusal, ValueError):
    """The server will not fetch this URL; the message names it and says why. Still a ValueError: a bulk import's
    readers report a bad entry as one."""

    code = "outbound_refused"


def allow_private() -> bool:
    return bool(getattr(settings, "TAGRANK_OUTBOUND_ALLOW_PRIVATE", False))


# IPv6 ranges that carry an IPv4 address inside them; a packet sent there can end up at that IPv4 host.
NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))  # RFC 6052, RFC 8215
IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # the deprecated ::a.b.c.d form
# Tunnels: where a 6to4 (2002::/16) or Teredo (2001::/32) packet goes is up to a relay, whatever IPv4 it names.
TUNNELS = (ipaddress.IPv6Network("2002::/16"), ipaddress.IPv6Network("2001::/32"))


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address stands for: mapped, 6to4, Teredo (server and client), NAT64, compatible."""
    found = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
    if any(ip in net for net in NAT64) or (ip in IPV4_COMPATIBLE and int(ip) > 1):  # (:: and ::1 are not IPv4)
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return [address for address in found if address is not None]


def is_public_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    # is_global also leaves out shared space (100.64/10, where some clouds keep their metadata service).
    return ip.is_global and not (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast
                                 or ip.is_reserved or ip.is_unspecified
                                 or (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local))


def refusal_reason(address: str) -> str | None:
    """Why ``address`` may not be fetched, or None for a public address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address):
        inside = embedded_ipv4(ip)
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1 (and ::ffff:8.8.8.8 is 8.8.8.8, public)
        elif any(ip in net for net in TUNNELS):
            shown = ", ".join(str(v4) for v4 in inside)
            return f"a 6to4 or Teredo tunnel address (carrying {shown})"
        else:
            hidden = [v4 for v4 in inside if not is_public_ip(v4)]
            if hidden:
                return f"an IPv6 address that carries the non-public IPv4 address {hidden[0]}"
    if not is_public_ip(ip):
        return "a non-public address (loopback, private, link-local, site-local, multicast or reserved)"
    return None


def is_public(address: str) -> bool:
    return refusal_reason(address) is None


def check_address(url: str, address: str) -> None:
    if not allow_private() and not is_public(address):
        reason = refusal_reason(address) or "a non-public address"
        raise OutboundRefused(f"{url}: refused, its host is at {address}, {reason}.")


def check_url(url: str) -> None:
    """Refuse ``url`` unless it is http(s) and every address of its host is public."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in SCHEMES or not parts.hostname:
        raise OutboundRefused(f"{url}: refused, only http:// and https:// URLs with a host can be fetched.")
    if allow_private():
        return
    try:
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
        found = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError) as exc:
        raise OutboundRefused(f"{url}: refused, its host cannot be resolved ({exc}).") from None
    for *_, sockaddr in found:
        check_address(url, sockaddr[0])


class _PeerChecked:
    """A connection that refuses to send anything to a non-public peer (the address really connected to)."""

    def connect(self):
        super().connect()
        peer = self.sock.getpeername()[0]
        try:
            check_address(f"{self.host}:{self.port}", peer)
        except OutboundRefused:
            self.close()
            raise


class CheckedHTTPConnection(_PeerChecked, http.client.HTTPConnection):
    pass


class CheckedHTTPSConnection(_PeerChecked, http.client.HTTPSConnection):
    pass


class CheckedHTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req):
        return self.do_open(CheckedHTTPConnection, req)


class CheckedHTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req):
        return self.do_open(CheckedHTTPSConnection, req)  # the default context: certificates verified


class CheckedRedirectHandler(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        check_url(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class NoRedirectHandler(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise urllib.error.HTTPError(req.full_url, code, f"redirect to {newurl} not followed", headers, fp)


def open_url(request: urllib.request.Request, *, timeout: float, follow_redirects: bool = True):
    """``urllib.request.urlopen`` for outside URLs: checked before, at connection and at each redirect."""
    check_url(request.full_url)
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.UnknownHandler(), urllib.request.HTTPDefaultErrorHandler(), urllib.request.HTTPErrorProcessor(),
        CheckedHTTPHandler(), CheckedHTTPSHandler(),
        CheckedRedirectHandler() if follow_redirects else NoRedirectHandler(),
    ):
        opener.add_handler(handler)
    return opener.open(request, timeout=timeout)
