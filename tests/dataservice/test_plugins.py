"""Plugin selection: per VO, then ``any``, then the generic plugin; a bad path is a clear error."""

from __future__ import annotations

import pytest

from pandasrv.config import load_settings
from pandasrv.dataservice.plugins import PluginError, Plugins
from pandasrv.dataservice.plugins.generic import AdderPlugin
from tests.dataservice.plugins_for_tests import RecordingAdder, TransferringAdder


def test_vo_entry_then_catch_all_then_generic():
    settings = load_settings(plugins={"adder": {"atlas": "tests.dataservice.plugins_for_tests:TransferringAdder",
                                                "any": "tests.dataservice.plugins_for_tests:RecordingAdder"}})
    plugins = Plugins("adder", None, settings)
    assert type(plugins.for_vo("atlas")) is TransferringAdder
    assert type(plugins.for_vo("cms")) is RecordingAdder
    assert plugins.for_vo("cms") is plugins.for_vo(None)  # built once per process
    assert type(Plugins("adder", None, load_settings()).for_vo("atlas")) is AdderPlugin


def test_a_plugin_that_cannot_be_loaded_names_itself():
    settings = load_settings(plugins={"closer": {"any": "no.such.module:Closer"}})
    with pytest.raises(PluginError, match="no.such.module:Closer"):
        Plugins("closer", None, settings).for_vo("atlas")
