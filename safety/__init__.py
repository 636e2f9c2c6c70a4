"""celltox: adverse-event safety monitoring for early-phase cell-therapy trials.

The domain core: ingest (files -> DuckDB), grading (CTCAE v5.0 labs, ASTCT CRS/ICANS), DLT screening,
stopping rules, listings and exports. No Streamlit import anywhere in this package.
"""
__version__ = "0.1.0"
