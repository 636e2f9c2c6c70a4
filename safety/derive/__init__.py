"""Derivations: everything computed from the loaded tables (eligibility, CTCAE grades, CRS/ICANS, ICAHT, DLT, stopping rules)."""
