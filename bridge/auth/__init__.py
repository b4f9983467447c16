"""OAuth flows per provider and the encrypted token vault."""
