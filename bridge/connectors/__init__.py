"""Provider connectors on the official SDKs. Filled in per provider."""
