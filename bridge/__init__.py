"""bridge: enforce a firm's contract terms (reminders, late fees, renegotiations) on its accounting package."""

__version__ = "0.1.0"
