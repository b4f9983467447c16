"""Review before it goes out (docs/review.md): plans waiting for approval, the pages, sign-in and links.

- `service`: the ReviewSink a server hands `review = "required"` plans to, and approval / rejection / forgiving,
  which apply through the ledger exactly as `bridge apply` does (every action re-evaluated first).
- `auth`: users (argon2), signed session cookies with a CSRF token, signed one-time links, sign-in throttling.
- `web`: the Starlette routes (`GET /review`, `GET /review/{plan_id}`, the forms), Jinja2-rendered, no JavaScript.
"""
