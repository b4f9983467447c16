"""Benchmark of message rendering: what a sync pays to write a reminder in the contract's words.

Run as `.venv/bin/python bench/messages.py` (or `make bench`); `--messages N` renders fewer.
For each shipped language (one locale each) it renders N overdue reminders, every one for a
different client, invoice and amount (so no formatted value repeats), with the late-fee clause
restated and the firm's signature, and prints the best of 3 runs per message; then the same for
the HTML part (`RenderedMessage.html`, made only when a sender asks for it).
"""

from __future__ import annotations

import argparse
import time
from datetime import date
from decimal import Decimal

from bridge.messages import FeeTerms, MessageContext, RenderedMessage, render_message

LOCALES = {"en": ("en_US", "USD"), "ko": ("ko_KR", "KRW"), "de": ("de_DE", "EUR"), "fr": ("fr_FR", "EUR"),
           "es": ("es_ES", "EUR")}  # fmt: skip
FEE = FeeTerms(percent=Decimal("1.5"), grace_days=5, every_days=30, max_percent_of_total=Decimal(10))


def contexts(n: int, currency: str) -> list[MessageContext]:
    places = Decimal(1) if currency == "KRW" else Decimal("0.01")
    return [
        MessageContext(
            message="overdue",
            customer_name=f"Client {i}",
            invoice_number=f"INV-{i:06d}",
            currency=currency,
            amount_due=(Decimal(100_000 + 37 * i) * places),
            total=(Decimal(200_000 + 37 * i) * places),
            due_date=date(2026, 9, 7),
            today=date(2026, 10, 20),
            days_overdue=43,
            clause="contracts.standard.reminders",
            firm_name="Maple & Finch Design",
            fee_added=Decimal(2250) * places,
            late_fee=FEE,
        )
        for i in range(n)
    ]


def best_of(runs: int, work: list[MessageContext], locale: str) -> tuple[float, list[RenderedMessage]]:
    best, rendered = float("inf"), []
    for _ in range(runs):
        start = time.perf_counter()
        rendered = [render_message(ctx, locale=locale) for ctx in work]
        best = min(best, time.perf_counter() - start)
    return best, rendered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000, help="reminders per language (default 20,000)")
    args = parser.parse_args()
    n = args.messages
    print(f"{n:,} overdue reminders per language, best of 3 (µs per message)")
    for language, (locale, currency) in LOCALES.items():
        work = contexts(n, currency)
        render_message(work[0], locale=locale)  # warm the caches: templates, Babel data, formatters
        seconds, rendered = best_of(3, work, locale)
        html = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            for message in rendered:
                _ = message.html
            html = min(html, time.perf_counter() - start)
        print(f"  {language} ({locale}, {currency}): text {seconds / n * 1e6:6.1f}   html part {html / n * 1e6:6.1f}")


if __name__ == "__main__":
    main()
