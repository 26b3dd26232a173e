"""A database outage in the middle of a rating run: honest 503s, nothing acknowledged is lost.

On PostgreSQL the outage is real at the network level: Django talks to the server through a small TCP
forwarder in this test, which is cut (open connections dropped, new ones refused) and later restored.
That is safer than stopping a server other test runs share, and simpler than a private cluster. On
SQLite the database file's path is pointed at a folder that does not exist, which fails the same way
(OperationalError on connect).

Between requests the test does what Django's WSGI handler does around every request
(``close_old_connections``), which the test client skips: that is how a real server drops a broken
connection and reconnects once the database is back.
"""
from __future__ import annotations

import socket
import threading
import uuid

import pytest
from django.db import close_old_connections, connection

from labeling.models import Comparison, Membership

NEXT = "/api/v1/projects/test-project/next-pair/"
COMPARISONS = "/api/v1/projects/test-project/comparisons/"


class CuttableProxy:
    """Forwards 127.0.0.1:<port> to the database server until cut; while cut, every connection is dropped."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cut_off = threading.Event()
        self.stopped = threading.Event()
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.cut_off.is_set():
                client.close()
                continue
            server = socket.create_connection(self.target)
            with self.lock:
                self.sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self):
        self.cut_off.set()
        with self.lock:
            for sock in self.sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            self.sockets.clear()

    def restore(self):
        self.cut_off.clear()

    def stop(self):
        self.stopped.set()
        self.cut()
        self.listener.close()


@pytest.fixture
def database_switch():
    """(cut, restore): take the database away from Django and give it back."""
    settings_dict = connection.settings_dict
    saved = {key: settings_dict.get(key) for key in ("HOST", "PORT", "NAME")}
    proxy = None
    if connection.vendor == "postgresql":
        proxy = CuttableProxy(saved["HOST"] or "127.0.0.1", int(saved["PORT"] or 5432))
        connection.close()
        settings_dict.update(HOST="127.0.0.1", PORT=str(proxy.port))

        def cut():
            proxy.cut()

        def restore():
            proxy.restore()
    else:
        def cut():
            connection.close()
            settings_dict["NAME"] = "/nonexistent-tagrank-outage/db.sqlite3"

        def restore():
            settings_dict["NAME"] = saved["NAME"]

    yield cut, restore
    connection.close()
    settings_dict.update(saved)
    if proxy is not None:
        proxy.stop()


def call(client, method, url, payload=None):
    close_old_connections()  # what Django's handler does at request start (the test client does not)
    response = client.get(url) if method == "GET" else client.post(url, payload, format="json")
    close_old_connections()  # and at request end
    return response


@pytest.mark.django_db(transaction=True)
def test_an_outage_mid_run_answers_503_and_loses_no_acknowledged_judgment(api, client, project, images, rater,
                                                                         database_switch, settings):
    cut, restore = database_switch
    settings.TAGRANK_MAX_LIVE_LEASES = 2
    client.force_login(rater)
    rating = api(rater)
    statuses: list[int] = []
    acknowledged: set[str] = set()
    queue: list[dict] = []  # judgments not acknowledged yet, resent with the same key (as rate.js does)

    def flush():
        while queue:
            response = call(rating, "POST", COMPARISONS, queue[0])
            statuses.append(response.status_code)
            if response.status_code not in (200, 201):
                return
            acknowledged.add(queue.pop(0)["client_key"])

    def rate_one():
        response = call(rating, "GET", NEXT)
        statuses.append(response.status_code)
        if response.status_code == 200:
            queue.append({"lease": response.json()["lease"], "winner": "a", "client_key": uuid.uuid4().hex})
        flush()
        return response

    for _ in range(4):
        rate_one()
    held = call(rating, "GET", NEXT).json()  # leased before the outage, judged during it
    queue.append({"lease": held["lease"], "winner": "b", "client_key": "judged-during-outage"})

    cut()
    during = [rate_one() for _ in range(3)]
    during.append(call(rating, "POST", COMPARISONS, queue[0]))
    page = call(client, "GET", "/projects/test-project/rate/")
    for response in during:
        assert response.status_code == 503, response.content
        assert response["Retry-After"] and response.json()["code"] == "service_unavailable"
    assert page.status_code == 503 and b"Try again" in page.content and page["Retry-After"]
    assert "judged-during-outage" in [item["client_key"] for item in queue]

    restore()
    flush()
    for _ in range(4):
        rate_one()
    assert not queue
    assert 500 not in statuses and set(statuses) <= {200, 201, 204, 503}
    stored = set(Comparison.objects.filter(rater=rater).values_list("client_key", flat=True))
    assert "judged-during-outage" in acknowledged and acknowledged <= stored
    assert len(stored) == len(acknowledged) == 9
    assert call(client, "GET", "/projects/test-project/rate/").status_code == 200
    assert Membership.objects.filter(user=rater, is_active=True).exists()


def test_broker_and_cache_connection_errors_are_503_and_bugs_stay_500(settings):
    import kombu.exceptions
    import redis.exceptions
    from django.db import ProgrammingError
    from django.test import RequestFactory

    from config.outage import OutageMiddleware

    settings.TAGRANK_RETRY_AFTER_SECONDS = 7
    middleware = OutageMiddleware(lambda request: None)
    api_request, page_request = RequestFactory().post("/api/v1/x/"), RequestFactory().get("/projects/x/")
    for error in (kombu.exceptions.OperationalError("broker down"), redis.exceptions.ConnectionError("no redis")):
        answer = middleware.process_exception(api_request, error)
        assert answer.status_code == 503 and answer["Retry-After"] == "7"
        assert answer["Content-Type"] == "application/json" and b"service_unavailable" in answer.content
        page = middleware.process_exception(page_request, error)
        assert page.status_code == 503 and b"Try again" in page.content
    assert middleware.process_exception(api_request, ProgrammingError("bad SQL")) is None


@pytest.mark.django_db(transaction=True)
def test_a_cut_inside_the_submit_transaction_stores_nothing_and_the_retry_stores_it_once(api, project, images, rater,
                                                                                       database_switch, monkeypatch):
    """The database goes away after the comparison row is written but before the transaction commits."""
    from django.db import OperationalError

    from labeling.services import leases

    cut, restore = database_switch
    rating = api(rater)
    pair = call(rating, "GET", NEXT).json()
    judged = leases.mark_lease_judged

    def cut_mid_transaction(lease_id, comparison_id):
        cut()
        if connection.vendor != "postgresql":  # SQLite has no socket to lose: the same error, raised here
            raise OperationalError("disk I/O error")
        judged(lease_id, comparison_id)  # on PostgreSQL this statement meets the dropped connection

    monkeypatch.setattr(leases, "mark_lease_judged", cut_mid_transaction)
    payload = {"lease": pair["lease"], "winner": "b", "client_key": "mid-transaction"}
    during = call(rating, "POST", COMPARISONS, payload)
    assert during.status_code == 503 and during.json()["code"] == "service_unavailable"
    monkeypatch.setattr(leases, "mark_lease_judged", judged)
    restore()
    assert call(rating, "POST", COMPARISONS, payload).status_code == 201  # nothing was half-stored
    assert call(rating, "POST", COMPARISONS, payload).status_code == 200  # and a replay stays a replay
    assert Comparison.objects.filter(rater=rater, client_key="mid-transaction").count() == 1
