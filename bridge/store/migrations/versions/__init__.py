"""Migration scripts, oldest first; each mirrors `bridge/store/tables.py` at its revision."""
