"""Every TOML example of ``docs/deploy.md`` is a complete, valid settings file: it loads (unknown or misspelt
settings are refused), passes the start-up checks, and renders the Apache (and, with nodes, the HAProxy)
configuration an operator would get from it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pandasrv.config import load_settings
from pandasrv.deploy import apache, haproxy
from pandasrv.web.auth import check_loopback
from tests.deploy.conftest import REPO

EXAMPLES = re.findall(r"```toml\n(.*?)```", (REPO / "docs" / "deploy.md").read_text(), flags=re.DOTALL)


def test_the_guide_has_the_examples_it_promises() -> None:
    assert len(EXAMPLES) >= 4  # x509, VOMS, tokens, two nodes + balancer
    assert {re.search(r'^auth = "(\w+)"', text, re.MULTILINE).group(1) for text in EXAMPLES} >= {"x509", "token"}


@pytest.mark.parametrize("text", EXAMPLES, ids=[f"example{i}" for i in range(len(EXAMPLES))])
def test_each_toml_example_loads_and_renders(text: str, tmp_path: Path) -> None:
    path = tmp_path / "pandasrv.toml"
    path.write_text(text)
    settings = load_settings(str(path))
    check_loopback(settings)
    config = apache.render_config(settings, apache.Layout(tmp_path / "apache"))
    assert f"Listen {settings.host}:{settings.port}" in config
    if settings.apache.ssl_port:
        assert f"SSLCertificateFile \"{Path(settings.apache.ssl_cert).resolve()}\"" in config
    if settings.haproxy.backends:
        balancer = haproxy.render_config(settings, tmp_path / "haproxy")
        assert balancer.count("    server node") == 2 * len(settings.haproxy.backends)
