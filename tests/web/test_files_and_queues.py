"""The upload cache (putFile, upload_cache_file, /cache downloads, validate) and queue management."""

from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys

import httpx

from tests.web.conftest import REPO
from tests.web.helpers import JSON_HEADERS, submit_activated


def _upload(server, method, name, data, legacy=False):
    path = f"/server/panda/{method}" if legacy else f"/api/v1/file_server/{method}"
    return httpx.post(server.url + path, files={"file": (name, data)}, headers={"Accept": "application/json"})


def test_put_file_and_download(server):
    script = b"#!/bin/sh\necho payload says hello\n"
    name = f"run-{os.getpid()}-{server.backend}.sh"
    assert _upload(server, "putFile", f"/home/user/tmp/{name}", script, legacy=True).text == "True"
    download = httpx.get(f"{server.url}/cache/{name}")
    assert download.content == script and download.headers["content-type"] == "application/x-sh"
    again = _upload(server, "putFile", name, b"other", legacy=True)
    assert again.text.startswith("ERROR: cannot overwrite file")
    assert _upload(server, "putFile", name + ".__ow__", b"replaced", legacy=True).text == "True"
    assert httpx.get(f"{server.url}/cache/{name}").content == b"replaced"


def test_upload_cache_file_and_validate(server):
    data = gzip.compress(f"sandbox of {server.backend}".encode() * 50)
    name = f"sources.{os.getpid()}-{server.backend}.tar.gz"
    reply = _upload(server, "upload_cache_file", f"/tmp/{name}", data).json()
    assert reply["success"] and name in reply["message"]
    download = httpx.get(f"{server.url}/cache/{name}")
    assert download.content == data and download.headers["content-type"] == "application/octet-stream"
    assert int(download.headers["content-length"]) == len(data) and "content-encoding" not in download.headers
    crc = struct.unpack("<I", data[-8:-4])[0]  # what panda-client sends
    found = httpx.post(f"{server.url}/api/v1/file_server/validate_cache_file", json={"file_size": len(data), "checksum": crc},
                       headers=JSON_HEADERS).json()
    assert found["success"] and found["message"].endswith(f":{name}") and found["message"].startswith("FOUND:")
    missing = httpx.post(f"{server.url}/api/v1/file_server/validate_cache_file", json={"file_size": 1, "checksum": 2},
                         headers=JSON_HEADERS).json()
    assert missing["success"] is False
    duplicate = _upload(server, "upload_cache_file", name, data).json()
    assert duplicate["success"] is False and "cannot overwrite" in duplicate["message"]


def test_unsafe_names(server):
    for bad in ("..", ".hidden", "a b", "x/..", "semi;colon"):
        reply = _upload(server, "upload_cache_file", bad, b"x").json()
        assert reply["success"] is False, bad
    assert _upload(server, "upload_cache_file", "../../escape.txt", b"x").json()["success"]  # cut to basename
    assert httpx.get(f"{server.url}/cache/escape.txt").content == b"x"
    assert httpx.get(f"{server.url}/cache/..%2F..%2Fetc%2Fpasswd").status_code in (403, 404)
    assert httpx.get(f"{server.url}/cache/.upload-x").status_code == 403
    assert httpx.get(f"{server.url}/cache/does-not-exist").status_code == 404
    no_file = httpx.post(f"{server.url}/api/v1/file_server/upload_cache_file", data={"x": "1"},
                         files={"other": ("a", b"b")}).json()
    assert no_file["success"] is False and "no file part" in no_file["message"]


def _cli(server, *args):
    env = {**os.environ, "PANDASRV_DB_URL": server.db_url, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "pandasrv.cli", "queue", *args], env=env, capture_output=True,
                          text=True, timeout=60)


def test_queue_commands_and_schedconfig(server):
    name = f"CLI_Q_{os.getpid()}"
    added = _cli(server, "add", name, "--site", "CLI_SITE", "--storage", "MY_DISK", "--maxtime", "3600",
                 "--maxrss", "2000")
    assert added.returncode == 0, added.stderr
    assert _cli(server, "add", name).returncode == 1
    listed = _cli(server, "list")
    assert f"{name}\tsite=CLI_SITE\tstatus=online\tstorage=MY_DISK" in listed.stdout
    assert _cli(server, "set", name, "status=test", "corecount=8", 'catchall="x y"').returncode == 0
    assert _cli(server, "set", name, "status=weird").returncode == 2
    assert _cli(server, "set", "NO_SUCH_QUEUE", "maxrss=1").returncode == 1
    description = httpx.get(f"{server.url}/cache/schedconfig/{name}.all.json").json()
    assert description["nickname"] == name and description["panda_resource"] == name
    assert description["site"] == description["atlas_site"] == "CLI_SITE"
    assert (description["status"], description["state"], description["corecount"]) == ("test", "ACTIVE", 8)
    assert (description["maxtime"], description["maxrss"], description["catchall"]) == (3600, 2000, "x y")
    assert description["astorages"] == {"pr": ["MY_DISK"], "pw": ["MY_DISK"], "pl": ["MY_DISK"]}
    assert description["copytools"] == {"mv": {"setup": ""}} and description["acopytools"]["pw"] == ["mv"]
    assert httpx.get(f"{server.url}/cache/schedconfig/NO_SUCH.all.json").status_code == 404
    as_json = json.loads(_cli(server, "list", "--json").stdout)
    assert as_json[name]["maxrss"] == 2000


def test_ddm_endpoints_come_from_queue_storages(server):
    queue = server.add_queue(storage="SITE_SCRATCH")
    (panda_id,) = submit_activated(server, queue)
    job = httpx.post(f"{server.url}/server/panda/getJob", data={"siteName": queue, "prodSourceLabel": "user"},
                     headers={"Accept": "application/json"}).json()
    assert job["PandaID"] == panda_id and job["ddmEndPointOut"] == "SITE_SCRATCH"
