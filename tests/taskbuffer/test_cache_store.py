"""The upload cache in the database on every backend: chunked content, owners, refusals that change nothing,
concurrent uploads of one name that never mix, and retention."""

from __future__ import annotations

import datetime as _dt
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pandasrv.clock import utcnow
from pandasrv.taskbuffer.db_proxy import DBProxy
from pandasrv.taskbuffer.db_proxy_mods.cache import CHUNK_BYTES
from tests.taskbuffer.test_db_proxy import proxy  # noqa: F401 - fixture
from tests.taskbuffer.test_race_safe_writes import race


def read(p: DBProxy, name: str) -> bytes | None:
    info = p.cache_file_info(name)
    if info is None:
        return None
    chunks = [p.cache_file_chunk(name, info["version"], seq) for seq in range(info["nChunks"])]
    assert None not in chunks
    data = b"".join(chunks)  # type: ignore[arg-type]
    assert len(data) == info["fileSize"]
    return data


def test_sizes_around_the_chunk_boundary_round_trip(proxy):  # noqa: F811
    for size in (0, 1, CHUNK_BYTES - 1, CHUNK_BYTES, CHUNK_BYTES + 1, 3 * CHUNK_BYTES + 5):
        data = os.urandom(size)
        assert proxy.store_cache_file(f"f{size}", "alice", data, checksum="c") == "stored"
        assert read(proxy, f"f{size}") == data
        assert proxy.cache_file_info(f"f{size}")["nChunks"] == max(1, -(-size // CHUNK_BYTES))


def test_only_the_owner_overwrites_and_refusals_change_nothing(proxy):  # noqa: F811
    assert proxy.store_cache_file("x.sh", "alice", b"alice v1") == "stored"
    assert proxy.store_cache_file("x.sh", "alice", b"again") == "exists"
    assert proxy.store_cache_file("x.sh", "bob", b"bob's code", overwrite=True) == "forbidden"
    assert proxy.store_cache_file("x.sh", "bob", b"bob's code") == "forbidden"
    assert read(proxy, "x.sh") == b"alice v1"
    assert proxy.cache_file_info("x.sh")["owner"] == "alice"
    assert proxy.store_cache_file("x.sh", "alice", b"alice v2" * CHUNK_BYTES, overwrite=True) == "stored"
    assert read(proxy, "x.sh") == b"alice v2" * CHUNK_BYTES
    assert proxy.cache_file_info("nothing") is None


def test_an_old_version_is_gone_after_an_overwrite(proxy):  # noqa: F811
    proxy.store_cache_file("y", "alice", b"one")
    old = proxy.cache_file_info("y")["version"]
    proxy.store_cache_file("y", "alice", b"two", overwrite=True)
    assert proxy.cache_file_chunk("y", old, 0) is None  # a download of the old version ends short


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.tuples(st.sampled_from(["alice", "bob"]), st.booleans(), st.binary(max_size=64)),
                      min_size=1, max_size=6))
def test_owner_rules_as_a_model(proxy, steps):  # noqa: F811
    name = f"m{os.urandom(6).hex()}"
    model: tuple[str, bytes] | None = None
    for owner, overwrite, data in steps:
        if model is None:
            expected = "stored"
        elif model[0] != owner:
            expected = "forbidden"
        else:
            expected = "stored" if overwrite else "exists"
        assert proxy.store_cache_file(name, owner, data, overwrite=overwrite) == expected
        if expected == "stored":
            model = (owner, data)
        assert read(proxy, name) == model[1]


def test_concurrent_uploads_of_one_name_never_mix(db_url):
    size = 2 * CHUNK_BYTES + 10

    def call(p: DBProxy, round_: int, session: int) -> str:
        owner = "alice" if session % 2 == 0 else "bob"
        return p.store_cache_file(f"race{round_}", owner, bytes([session]) * size, overwrite=True)

    outcomes = race(db_url, call, rounds=3)
    reader = DBProxy(db_url)
    for round_, results in enumerate(outcomes):
        data = read(reader, f"race{round_}")
        owner = reader.cache_file_info(f"race{round_}")["owner"]
        assert data is not None and len(set(data)) == 1  # one upload's bytes, never a mix
        winners = [s for s, result in enumerate(results) if result == "stored"]
        assert data[0] in winners
        assert all(("alice" if s % 2 == 0 else "bob") == owner for s in winners)
        assert all(result == "forbidden" for s, result in enumerate(results) if s not in winners)
    reader.close()


def test_purge_by_age_in_batches(proxy):  # noqa: F811
    proxy.store_cache_file("old", "alice", b"x" * (CHUNK_BYTES + 1))
    proxy.store_cache_file("new", "alice", b"y")
    assert proxy.purge_cache_files(utcnow() - _dt.timedelta(hours=1), 10) == 0
    assert proxy.purge_cache_files(utcnow() + _dt.timedelta(seconds=1), 1) == 1
    assert proxy.purge_cache_files(utcnow() + _dt.timedelta(seconds=1), 10) == 1
    assert proxy.cache_file_info("old") is None and proxy.cache_file_info("new") is None
