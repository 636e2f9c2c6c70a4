"""Committee outputs: listings and tables in CSV, XLSX, RTF and PDF."""

FORMATS = ("csv", "xlsx", "rtf", "pdf")  # file formats of a packet, in the order they are written

