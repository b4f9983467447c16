"""The policy engine: contract terms in, a plan out. Pure: no I/O, no clock."""
