"""The QuickBooks emulator as python-quickbooks and intuit-oauth see it, unchanged."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import requests
from intuitlib.exceptions import AuthClientError
from quickbooks import QuickBooks
from quickbooks.batch import batch_update
from quickbooks.cdc import change_data_capture
from quickbooks.exceptions import (
    AuthorizationException,
    ObjectNotFoundException,
    QuickbooksException,
    ValidationException,
)
from quickbooks.objects.base import LinkedTxn, Ref
from quickbooks.objects.customer import Customer
from quickbooks.objects.detailline import SalesItemLine, SalesItemLineDetail
from quickbooks.objects.invoice import Invoice
from quickbooks.objects.item import Item
from quickbooks.objects.payment import Payment, PaymentLine

from bridge.clock import now_utc
from bridge_sandbox import Sandbox
from tests.sandbox.conftest import REALM, FakeClock, api, client, get_json, link

LATE_FEE_ITEM = "8"


def fee_line(amount: str, description: str = "Late fee (2026-10) on invoice 1004") -> SalesItemLine:
    line = SalesItemLine()
    line.Amount = Decimal(amount)
    line.Description = description
    line.SalesItemLineDetail = SalesItemLineDetail()
    ref = Ref()
    ref.value, ref.name = LATE_FEE_ITEM, "Late Fee"
    line.SalesItemLineDetail.ItemRef = ref
    line.SalesItemLineDetail.Qty = 1
    line.SalesItemLineDetail.UnitPrice = Decimal(amount)
    return line


def by_number(qb: QuickBooks, number: str) -> Invoice:
    found = Invoice.filter(DocNumber=number, qb=qb)
    assert len(found) == 1
    invoice: Invoice = found[0]
    return invoice


# ---------------------------------------------------------------------------------------------------- OAuth


def test_discovery_document_has_every_endpoint_intuitlib_reads(sandbox: Sandbox) -> None:
    doc = get_json(sandbox.base_url + "/.well-known/openid_configuration")
    for key in (
        "authorization_endpoint",
        "token_endpoint",
        "revocation_endpoint",
        "userinfo_endpoint",
        "issuer",
        "jwks_uri",
    ):
        assert doc[key].startswith(sandbox.base_url)


def test_link_consents_at_once_and_returns_tokens_without_id_token(sandbox: Sandbox) -> None:
    linked = link(sandbox.base_url, client_id="any", client_secret="thing")
    assert linked.realm == REALM
    assert linked.auth.access_token and linked.auth.refresh_token
    assert linked.auth.expires_in == 3600
    assert linked.auth.id_token is None


def test_authorization_code_is_single_use(sandbox: Sandbox) -> None:
    url = (
        f"{sandbox.base_url}/connect/oauth2?client_id=c&response_type=code&scope=com.intuit.quickbooks.accounting"
        "&redirect_uri=http://127.0.0.1:9/cb&state=xyz"
    )
    location = requests.get(url, allow_redirects=False, timeout=5).headers["Location"]
    code = location.split("code=")[1].split("&")[0]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": "http://127.0.0.1:9/cb"}
    token_url = sandbox.base_url + "/oauth2/v1/tokens/bearer"
    assert requests.post(token_url, data=form, auth=("c", "s"), timeout=5).status_code == 200
    again = requests.post(token_url, data=form, auth=("c", "s"), timeout=5)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert requests.post(token_url, data=form, timeout=5).status_code == 401  # no client authentication


def test_refresh_token_rotates_and_the_old_one_is_refused(sandbox: Sandbox) -> None:
    linked = link(sandbox.base_url)
    first_refresh, first_access = linked.auth.refresh_token, linked.auth.access_token
    linked.auth.refresh()
    assert linked.auth.refresh_token != first_refresh
    assert linked.auth.access_token != first_access
    with pytest.raises(AuthClientError) as refused:
        linked.auth.refresh(refresh_token=first_refresh)
    assert refused.value.status_code == 400
    assert "invalid_grant" in refused.value.content.decode()
    linked.auth.refresh()  # the newest one still works
    assert Invoice.count(qb=client(sandbox.base_url, linked)) == 43


def test_revoked_tokens_stop_working(sandbox: Sandbox) -> None:
    linked = link(sandbox.base_url)
    qb = client(sandbox.base_url, linked)
    assert linked.auth.revoke()
    with pytest.raises(AuthorizationException):
        Invoice.count(qb=qb)
    with pytest.raises(AuthClientError):
        linked.auth.refresh()


def test_401_without_a_token_has_the_gateway_fault_body(sandbox: Sandbox) -> None:
    response = requests.get(api(sandbox, "invoice/101"), params={"minorversion": 75}, timeout=5)
    assert response.status_code == 401
    error = response.json()["fault"]["error"][0]
    assert error["code"] == "3200"
    assert "AuthenticationFailed" in error["message"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_expired_access_token_is_refused_until_refreshed(clock: FakeClock) -> None:
    with Sandbox(rate_limits=False, clock=clock) as sandbox:
        linked = link(sandbox.base_url)
        qb = client(sandbox.base_url, linked)
        assert Invoice.count(qb=qb) == 43
        clock.advance(seconds=3601)
        with pytest.raises(AuthorizationException) as refused:
            Invoice.count(qb=qb)
        assert refused.value.error_code == 401
        assert "Token expired" in refused.value.detail
        linked.auth.refresh()
        assert Invoice.count(qb=client(sandbox.base_url, linked)) == 43


def test_a_token_for_another_realm_is_forbidden(sandbox: Sandbox, qb: QuickBooks) -> None:
    qb.company_id = "1234567890"
    with pytest.raises(QuickbooksException) as refused:
        Invoice.count(qb=qb)
    # The gateway's lower-case {"fault": ...} body: the SDK sees only the status code.
    assert "403" in refused.value.message
    assert json.loads(refused.value.message.split(": ", 1)[1])["fault"]["error"][0]["code"] == "3100"


# ---------------------------------------------------------------------------------------------------- reads and queries


def test_all_get_and_money_as_decimal(qb: QuickBooks) -> None:
    invoices = Invoice.all(max_results=5, qb=qb)
    assert [i.DocNumber for i in invoices] == ["1001", "1002", "1003", "1004", "1005"]
    invoice = Invoice.get(invoices[0].Id, qb=qb)
    assert isinstance(invoice.TotalAmt, Decimal) and isinstance(invoice.Balance, Decimal)
    sales = [line for line in invoice.Line if line.DetailType == "SalesItemLineDetail"]
    assert invoice.TotalAmt == sum(line.Amount for line in sales)
    assert invoice.MetaData.LastUpdatedTime.endswith("-07:00")


def test_filter_choose_and_count(qb: QuickBooks) -> None:
    assert by_number(qb, "1009").CustomerRef.name == "Geeta Kalapatapu"
    chosen = Invoice.choose(["1001", "1044"], field="DocNumber", qb=qb)
    assert sorted(i.DocNumber for i in chosen) == ["1001", "1044"]
    assert Invoice.count(qb=qb) == 43  # 44 issued, one deleted
    assert Invoice.count("Balance = '0'", qb=qb) == len(Invoice.where("Balance = '0'", max_results=1000, qb=qb))


def test_incremental_query_window_with_order_and_paging(qb: QuickBooks) -> None:
    since = "2026-09-01T00:00:00-07:00"
    where = f"Metadata.LastUpdatedTime >= '{since}'"
    everything = Invoice.where(where, order_by="Metadata.LastUpdatedTime", max_results=1000, qb=qb)
    stamps = [datetime.fromisoformat(i.MetaData.LastUpdatedTime) for i in everything]
    assert stamps == sorted(stamps) and stamps[0] >= datetime.fromisoformat(since)
    assert 5 < len(everything) < 43
    page = Invoice.where(where, order_by="Metadata.LastUpdatedTime", start_position=4, max_results=3, qb=qb)
    assert [i.Id for i in page] == [i.Id for i in everything[3:6]]
    newest_first = Invoice.where(where, order_by="Metadata.LastUpdatedTime DESC", max_results=1, qb=qb)
    assert newest_first[0].Id == everything[-1].Id


def test_raw_query_shapes(qb: QuickBooks) -> None:
    page = qb.query(
        "SELECT * FROM Invoice WHERE DocNumber IN ('1001', '1002') ORDER BY Id STARTPOSITION 1 MAXRESULTS 10"
    )
    assert set(page) == {"QueryResponse", "time"}
    assert page["QueryResponse"]["startPosition"] == 1 and page["QueryResponse"]["maxResults"] == 2
    assert "totalCount" not in page["QueryResponse"]
    assert qb.query("SELECT COUNT(*) FROM Invoice WHERE DocNumber LIKE '100%'")["QueryResponse"] == {"totalCount": 9}
    assert qb.query("SELECT * FROM Invoice WHERE DocNumber = 'nope'")["QueryResponse"] == {}
    via_get = requests.get(
        api_url(qb, "query"),
        params={"query": "select * from Item", "minorversion": 75},
        headers={"Authorization": "Bearer " + qb.auth_client.access_token},
        timeout=5,
    )
    assert {i["Name"] for i in via_get.json()["QueryResponse"]["Item"]} >= {"Late Fee", "Design"}


def api_url(qb: QuickBooks, path: str) -> str:
    return f"{qb.api_url}/company/{qb.company_id}/{path}"


def test_maxresults_over_1000_and_bad_syntax_are_faults(qb: QuickBooks) -> None:
    with pytest.raises(ValidationException) as too_many:
        Invoice.all(max_results=1001, qb=qb)
    assert too_many.value.error_code == 4001
    with pytest.raises(ValidationException) as unparsable:
        qb.query("SELECT * FROM Invoice WHERE")
    assert unparsable.value.error_code == 4000


def test_missing_object_is_fault_610(qb: QuickBooks) -> None:
    with pytest.raises(ObjectNotFoundException) as missing:
        Invoice.get("99999", qb=qb)
    assert missing.value.error_code == 610


def test_project_is_a_sub_customer_with_two_invoices(qb: QuickBooks) -> None:
    projects = Customer.where("Job = true", qb=qb)
    assert len(projects) == 1
    project = projects[0]
    assert project.Job is True
    assert project.FullyQualifiedName.startswith("Freeman Sporting Goods:")
    assert len(Invoice.filter(CustomerRef=project.Id, qb=qb)) == 2


def test_inactive_names_are_hidden_unless_asked_for(qb: QuickBooks) -> None:
    item = Item.get(LATE_FEE_ITEM, qb=qb)
    item.Active = False
    item.sparse = True
    item.save(qb=qb)
    assert "Late Fee" not in {i.Name for i in Item.all(qb=qb)}
    assert "Late Fee" in {i.Name for i in Item.where("Active IN (true, false)", qb=qb)}


# ---------------------------------------------------------------------------------------------------- writes


def test_sparse_update_adds_a_fee_line_and_raises_total_and_balance(qb: QuickBooks) -> None:
    invoice = by_number(qb, "1004")  # overdue, unpaid
    before_total, before_balance, before_token = invoice.TotalAmt, invoice.Balance, invoice.SyncToken
    before_stamp = invoice.MetaData.LastUpdatedTime
    invoice.Line.append(fee_line("20.63"))
    invoice.sparse = True
    saved = invoice.save(qb=qb)
    assert saved.TotalAmt == before_total + Decimal("20.63")
    assert saved.Balance == before_balance + Decimal("20.63")
    assert int(saved.SyncToken) == int(before_token) + 1
    assert saved.MetaData.LastUpdatedTime > before_stamp
    lines = [line for line in saved.Line if line.DetailType == "SalesItemLineDetail"]
    assert lines[-1].Description.startswith("Late fee") and lines[-1].Id
    assert sum(1 for line in saved.Line if line.DetailType == "SubTotalLineDetail") == 1


def test_stale_sync_token_is_5010_from_the_base_exception(qb: QuickBooks) -> None:
    first = by_number(qb, "1004")
    second = by_number(qb, "1004")
    first.sparse = True
    first.PrivateNote = "first writer"
    first.save(qb=qb)
    second.sparse = True
    second.PrivateNote = "second writer"
    with pytest.raises(QuickbooksException) as stale:
        second.save(qb=qb)
    assert type(stale.value) is QuickbooksException
    assert stale.value.error_code == 5010
    assert "Stale Object Error" in stale.value.message


def test_a_given_line_collection_replaces_every_line(qb: QuickBooks) -> None:
    invoice = by_number(qb, "1009")  # carries QuickBooks' own late fee
    keep = [
        line.to_dict()
        for line in invoice.Line
        if line.DetailType == "SalesItemLineDetail" and line.Description != "Late Fee"
    ]
    body = {"Id": invoice.Id, "SyncToken": invoice.SyncToken, "sparse": True, "Line": keep}
    saved = qb.update_object("Invoice", json.dumps(body, default=str))["Invoice"]
    assert all(line.get("Description") != "Late Fee" for line in saved["Line"])
    assert saved["TotalAmt"] == invoice.TotalAmt - Decimal("25.00")


def test_full_update_from_the_sdk_keeps_totals(qb: QuickBooks) -> None:
    invoice = by_number(qb, "1030")  # partly paid
    invoice.CustomerMemo = None
    saved = invoice.save(qb=qb)
    assert (saved.TotalAmt, saved.Balance) == (invoice.TotalAmt, invoice.Balance)
    assert saved.DocNumber == "1030"


def test_requestid_replays_the_first_answer_without_a_second_change(sandbox: Sandbox, qb: QuickBooks) -> None:
    invoice = by_number(qb, "1004")
    invoice.Line.append(fee_line("10.00"))
    invoice.sparse = True
    once = invoice.save(qb=qb, request_id="late_fee:acme-qbo:104:1")
    twice = invoice.save(qb=qb, request_id="late_fee:acme-qbo:104:1")  # a retry after a lost answer
    assert once.SyncToken == twice.SyncToken == str(int(invoice.SyncToken) + 1)
    current = Invoice.get(invoice.Id, qb=qb)
    assert current.TotalAmt == once.TotalAmt and current.SyncToken == once.SyncToken
    writes = [r for r in sandbox.requests() if r["route"] == "write"]
    assert [r.get("replayed", False) for r in writes] == [False, True]


def test_send_records_the_email_and_delivery_info(sandbox: Sandbox, qb: QuickBooks) -> None:
    invoice = by_number(qb, "1044")
    assert invoice.EmailStatus == "NeedToSend"
    answer = invoice.send(qb=qb, send_to="ap@windsurf.example")
    sent = answer["Invoice"]
    assert sent["EmailStatus"] == "EmailSent"
    assert sent["DeliveryInfo"]["DeliveryType"] == "Email" and sent["DeliveryInfo"]["DeliveryTime"]
    assert sent["BillEmail"]["Address"] == "ap@windsurf.example"
    outbox = get_json(sandbox.base_url + "/_sandbox/outbox")
    assert len(outbox) == 1
    mail = outbox[0]
    assert mail["provider"] == "quickbooks" and mail["tenant"] == REALM and mail["invoice_id"] == invoice.Id
    assert mail["to"] == "ap@windsurf.example"
    assert mail["subject"] == "Invoice 1044 from Maple & Finch Landscape Design"
    assert "1044" in mail["body"] and mail["sent_at"]
    Invoice.get(invoice.Id, qb=qb).send(qb=qb)  # no sendTo: BillEmail
    assert get_json(sandbox.base_url + "/_sandbox/outbox")[-1]["to"] == "ap@windsurf.example"


def test_payments_keep_the_invoice_balance(qb: QuickBooks) -> None:
    invoice = by_number(qb, "1004")
    payment = Payment()
    payment.TotalAmt = Decimal("300.00")
    payment.CustomerRef = invoice.CustomerRef
    line = PaymentLine()
    line.Amount = Decimal("300.00")
    link_txn = LinkedTxn()
    link_txn.TxnId, link_txn.TxnType = invoice.Id, "Invoice"
    line.LinkedTxn = [link_txn]
    payment.Line = [line]
    saved = payment.save(qb=qb)
    assert saved.UnappliedAmt == 0
    after = Invoice.get(invoice.Id, qb=qb)
    assert after.Balance == invoice.Balance - Decimal("300.00")
    assert (saved.Id, "Payment") in [(t.TxnId, t.TxnType) for t in after.LinkedTxn]
    assert int(after.SyncToken) == int(invoice.SyncToken) + 1

    after.Line.append(fee_line("15.00"))
    after.sparse = True
    with_fee = after.save(qb=qb)
    assert with_fee.Balance == invoice.Balance - Decimal("300.00") + Decimal("15.00")

    Payment.get(saved.Id, qb=qb).delete(qb=qb)
    restored = Invoice.get(invoice.Id, qb=qb)
    assert restored.Balance == invoice.Balance + Decimal("15.00")
    assert not restored.LinkedTxn


def test_void_shows_zero_amounts(qb: QuickBooks) -> None:
    invoice = by_number(qb, "1030")  # partly paid: the payment becomes unapplied
    invoice.void(qb=qb)
    voided = Invoice.get(invoice.Id, qb=qb)
    assert (voided.TotalAmt, voided.Balance, voided.PrivateNote) == (0, 0, "Voided")
    seeded_void = by_number(qb, "1012")
    assert (seeded_void.TotalAmt, seeded_void.Balance, seeded_void.PrivateNote) == (0, 0, "Voided")


def test_deleted_invoices_vanish_from_reads_and_show_in_cdc(sandbox: Sandbox, qb: QuickBooks) -> None:
    invoice = by_number(qb, "1044")
    invoice.delete(qb=qb)
    with pytest.raises(ObjectNotFoundException):
        Invoice.get(invoice.Id, qb=qb)
    assert Invoice.filter(DocNumber="1044", qb=qb) == []
    assert Invoice.count(qb=qb) == 42
    since = (now_utc() - timedelta(hours=1)).isoformat()  # this sandbox runs on the real clock
    cdc = change_data_capture([Invoice, Payment], since, qb=qb)
    tombstones = [i for i in cdc.Invoice if getattr(i, "status", None) == "Deleted"]
    assert [t.Id for t in tombstones] == [invoice.Id]
    tombstone = get_json(sandbox.base_url + "/_sandbox/state")["quickbooks"]["Deleted"][-1]
    assert (tombstone["type"], tombstone["Id"], tombstone["DocNumber"]) == ("Invoice", invoice.Id, "1044")


def test_customer_names_are_unique(qb: QuickBooks) -> None:
    customer = Customer()
    customer.DisplayName = "cool cars"
    with pytest.raises(QuickbooksException) as duplicate:
        customer.save(qb=qb)
    assert duplicate.value.error_code == 6240
    customer.DisplayName = "Cooler Cars"
    assert customer.save(qb=qb).Id


# ---------------------------------------------------------------------------------------------------- CDC and batch


def test_cdc_reports_changes_and_seeded_tombstones_within_30_days(clock: FakeClock) -> None:
    clock.now = datetime(2026, 8, 10, 18, 0, tzinfo=UTC)
    with Sandbox(rate_limits=False, clock=clock) as sandbox:
        qb = client(sandbox.base_url, link(sandbox.base_url))
        answer = qb.change_data_capture("Invoice,Payment", "2026-07-20T00:00:00-07:00")
        invoices, payments = answer["CDCResponse"][0]["QueryResponse"]
        deleted = [i for i in invoices["Invoice"] if i.get("status") == "Deleted"]
        assert [d["Id"] for d in deleted] == ["121"]
        assert set(deleted[0]) == {"Id", "status", "domain", "MetaData"}
        assert payments["Payment"] and payments["maxResults"] == len(payments["Payment"])
        stamps = [i["MetaData"]["LastUpdatedTime"] for i in invoices["Invoice"]]
        assert all(s >= "2026-07-20" for s in stamps)
        with pytest.raises(QuickbooksException) as too_old:
            qb.change_data_capture("Invoice", "2026-07-01T00:00:00-07:00")
        assert too_old.value.error_code == 2010
        assert "30 days" in too_old.value.detail


def test_cdc_caps_each_entity(clock: FakeClock) -> None:
    clock.now = datetime(2026, 10, 20, 18, 0, tzinfo=UTC)
    options = {"quickbooks": {"cdc_max_per_entity": 3}}
    with Sandbox(rate_limits=False, clock=clock, options=options) as sandbox:
        qb = client(sandbox.base_url, link(sandbox.base_url))
        cdc = change_data_capture([Invoice], "2026-09-25T00:00:00", qb=qb)
        assert len(cdc.Invoice) == 3


def test_batch_answers_each_item_on_its_own(qb: QuickBooks) -> None:
    fresh = by_number(qb, "1004")
    stale = by_number(qb, "1006")
    stale.SyncToken = "0" if stale.SyncToken != "0" else "7"
    for invoice in (fresh, stale):
        invoice.PrivateNote = "batched"
        invoice.sparse = True
    result = batch_update([fresh, stale], qb=qb)
    assert [s.DocNumber for s in result.successes] == ["1004"]
    assert len(result.faults) == 1 and result.faults[0].Error[0].code == "5010"
    too_many = {"BatchItemRequest": [{"bId": str(n), "Query": "SELECT * FROM Item"} for n in range(31)]}
    with pytest.raises(ValidationException) as refused:
        qb.batch_operation(json.dumps(too_many))
    assert refused.value.error_code == 2010
    queries = qb.batch_operation(json.dumps({"BatchItemRequest": too_many["BatchItemRequest"][:2]}))
    assert [a["bId"] for a in queries["BatchItemResponse"]] == ["0", "1"]
    assert queries["BatchItemResponse"][0]["QueryResponse"]["Item"]


def test_create_invoice_fills_what_the_service_fills(clock: FakeClock) -> None:
    with Sandbox(rate_limits=False, clock=clock) as sandbox:
        qb = client(sandbox.base_url, link(sandbox.base_url))
        invoice = Invoice()
        customer = Ref()
        customer.value = "3"
        invoice.CustomerRef = customer
        line = SalesItemLine()
        line.SalesItemLineDetail = SalesItemLineDetail()
        item = Ref()
        item.value = "2"
        line.SalesItemLineDetail.ItemRef = item
        line.SalesItemLineDetail.Qty = 4
        line.SalesItemLineDetail.UnitPrice = Decimal("75.00")
        line.Amount = Decimal("300.00")
        invoice.Line = [line]
        saved = invoice.save(qb=qb)
        assert saved.DocNumber == "1045" and saved.SyncToken == "0"
        assert (saved.TotalAmt, saved.Balance) == (Decimal("300.00"), Decimal("300.00"))
        assert saved.TxnDate == "2026-10-20" and saved.DueDate == "2026-11-19"
        assert saved.CustomerRef.name == "Amy's Bird Sanctuary" and saved.BillEmail.Address == "birds@example.com"
        assert saved.MetaData.CreateTime == "2026-10-20T14:00:00-07:00"
        assert saved.Line[0].SalesItemLineDetail.ItemRef.name == "Design"
        bad = Invoice()
        bad.CustomerRef = customer
        bad.Line = [line]
        line.SalesItemLineDetail.ItemRef.value = "999"
        with pytest.raises(ValidationException) as invalid:
            bad.save(qb=qb)
        assert invalid.value.error_code == 2500


def test_several_companies_and_a_realm_per_authorization() -> None:
    seed = {"quickbooks": [{"realm_id": "111", "Customer": []}, {"realm_id": "222", "Customer": []}]}
    with Sandbox(seed, rate_limits=False) as sandbox:
        first = link(sandbox.base_url)
        assert first.realm == "111"
        url = (
            f"{sandbox.base_url}/connect/oauth2?client_id=c&response_type=code&redirect_uri=http://127.0.0.1:9/cb"
            "&realm_id=222"
        )
        assert "realmId=222" in requests.get(url, allow_redirects=False, timeout=5).headers["Location"]
        qb = client(sandbox.base_url, first)
        assert Invoice.count(qb=qb) == 0
        qb.company_id = "222"
        with pytest.raises(QuickbooksException):
            Invoice.count(qb=qb)
        assert isinstance(sandbox.state()["quickbooks"], list)
