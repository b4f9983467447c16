"""Provider descriptors (bridge/providers): light to load, and the facts they carry reach the core."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.config import load_terms
from bridge.delivery import reminder_delivery
from bridge.errors import ConfigError
from bridge.providers import customer_id_fields, load_providers, reminder_channels

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


def test_what_a_provider_reminder_carries_is_the_descriptors_fact_handed_to_the_core() -> None:
    # One fact, in the descriptors: the configuration hands it to the pure core (bridge.delivery cannot load
    # entry points), and a provider that states nothing is never taken to send the contract's text.
    channels = reminder_channels()
    assert {name: delivery.sends for name, delivery in channels.items()} == {
        "freshbooks": "contract_text",
        "quickbooks": "provider_invoice_email",
        "xero": "provider_invoice_email",
    }
    contracts = Path(__file__).resolve().parents[2] / "config" / "demo.toml"
    assert load_terms(contracts).provider_channels == channels
    for name, descriptor in load_providers()[0].items():
        assert reminder_delivery(name, "provider", channels) == descriptor.reminder_email, name
    assert reminder_delivery("fakebooks", "provider", channels).sends == "provider_invoice_email"
    assert reminder_delivery("freshbooks", "provider", {}).sends == "provider_invoice_email"


def test_customer_ids_come_from_the_descriptors() -> None:
    assert set(customer_id_fields()) == {"Id", "ContactID", "id", "userid"}


def test_a_connector_that_cannot_be_imported_is_a_config_error_naming_it() -> None:
    xero = load_providers()[0]["xero"]
    broken = dataclasses.replace(xero, connector="bridge.connectors.no_such_module:factory")
    with pytest.raises(ConfigError, match=r"the xero connector \(bridge.connectors.no_such_module:factory\) failed"):
        broken.connector_factory()


def test_the_entry_points_are_read_again_once_a_distribution_is_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    before, _ = load_providers()
    assert load_providers()[0] == before and "fakebooks" not in before  # read once, the same answer
    (tmp_path / "fakebooks_probe.py").write_text(
        "from bridge.providers import Provider\n"
        "PROVIDER = Provider(name='fakebooks', display_name='Fake', tenant_label='book', flow='x:y',\n"
        "                    connector='x:z')\n"
    )
    info = tmp_path / "fakebooks_probe-0.1.dist-info"
    info.mkdir()  # an entry added to a folder on the path: the installation changed
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakebooks-probe\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[bridge.providers]\nfakebooks = fakebooks_probe:PROVIDER\n")
    monkeypatch.delitem(sys.modules, "fakebooks_probe", raising=False)
    found, broken = load_providers()
    assert set(found) == set(before) | {"fakebooks"}, broken
    sys.modules.pop("fakebooks_probe", None)
