"""Fixtures for the rating loop and the labelling API: a second project and its members, fake DNS."""
import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """The default hasher takes about a second per password on this kind of machine; tests make many users."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def fresh_throttles():
    """Throttle counts live in the cache; every test starts with none."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def other_project(db):
    from labeling.models import Project

    return Project.objects.create(name="Other project", slug="other-project", overlap=1)


@pytest.fixture
def outsider(make_member, other_project):
    """A manager of another project: a member of Tagrank, but not of ``project``."""
    return make_member(other_project, "outsider", "manager")


@pytest.fixture
def second_rater(make_member, project):
    return make_member(project, "rater2", "rater")


@pytest.fixture
def fake_dns(monkeypatch):
    """``fake_dns({"intranet.example": "10.0.0.1"})``: those names resolve to those addresses, no network.

    A value may be a list: each lookup takes the next address (the last one repeats), as a rebinding DNS would.
    """
    import socket

    real = socket.getaddrinfo

    def install(table: dict):
        answers = {host: list(value) if isinstance(value, list) else [value] for host, value in table.items()}

        def getaddrinfo(host, port, *args, **kwargs):
            if host not in answers:
                return real(host, port, *args, **kwargs)
            address = answers[host].pop(0) if len(answers[host]) > 1 else answers[host][0]
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, int(port or 80)))]

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

    return install
