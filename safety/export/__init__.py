"""Committee outputs: listings and tables in CSV, XLSX, RTF and PDF."""
