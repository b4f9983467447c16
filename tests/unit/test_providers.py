"""Provider descriptors (bridge/providers): light to load, and the facts they carry agree with the core's."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from bridge.delivery import reminder_delivery
from bridge.errors import ConfigError
from bridge.providers import customer_id_fields, load_providers

SDKS = ("quickbooks", "intuitlib", "xero_python", "freshbooks")


def test_loading_every_descriptor_imports_no_sdk_and_no_connector() -> None:
    code = (
        f"import json, sys\nSDKS = {SDKS!r}\n"
        "before = set(sys.modules)\n"  # intuit-oauth's nspkg .pth makes an empty `intuitlib` at startup
        "from bridge.providers import load_providers\n"
        "found, broken = load_providers()\n"
        "heavy = sorted(m for m in set(sys.modules) - before if m.split('.')[0] in SDKS\n"
        "               or m.startswith(('bridge.connectors', 'bridge.auth', 'requests')))\n"
        "print(json.dumps({'found': sorted(found), 'broken': broken, 'heavy': heavy}))\n"
    )
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    seen = json.loads(ran.stdout)
    assert seen == {"found": ["freshbooks", "quickbooks", "xero"], "broken": {}, "heavy": []}


def test_each_descriptor_names_its_tenant_and_resolves_its_flow_lazily() -> None:
    found, _ = load_providers()
    assert {n: d.tenant_label for n, d in found.items()} == {
        "quickbooks": "realm id",
        "xero": "tenant id",
        "freshbooks": "account id",
    }
    for name, descriptor in found.items():
        assert descriptor.link_flow("http://127.0.0.1:1").provider == name
        assert callable(descriptor.connector_factory())
    assert [n for n, d in found.items() if d.https_redirect_only] == ["freshbooks"]


def test_the_reminder_fact_agrees_with_bridge_delivery() -> None:
    # bridge.delivery is pure (it cannot load entry points) and keeps its own table: the two must agree.
    for name, descriptor in load_providers()[0].items():
        sends = reminder_delivery(name, "provider").sends
        assert (sends == "contract_text") is descriptor.reminder_sends_contract_text, name


def test_customer_ids_come_from_the_descriptors() -> None:
    assert set(customer_id_fields()) == {"Id", "ContactID", "id", "userid"}


def test_a_connector_that_cannot_be_imported_is_a_config_error_naming_it() -> None:
    xero = load_providers()[0]["xero"]
    broken = dataclasses.replace(xero, connector="bridge.connectors.no_such_module:factory")
    with pytest.raises(ConfigError, match=r"the xero connector \(bridge.connectors.no_such_module:factory\) failed"):
        broken.connector_factory()
