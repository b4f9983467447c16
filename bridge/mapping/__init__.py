"""Provider JSON <-> normalized model, and actions -> provider payloads (pure). Filled in per provider."""
