import pytest

from tests.daemon.helpers import Masters


@pytest.fixture
def masters(monkeypatch):
    started = Masters(monkeypatch)
    yield started
    started.stop_all()
