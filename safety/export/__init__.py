"""Committee outputs: listings and tables in CSV, XLSX, RTF and PDF."""

FORMATS = ("csv", "xlsx", "rtf", "pdf")  # file formats of a packet, in the order they are written

PDF_MAX_ROWS = 1000  # rows of a listing the PDF shows before it points to the complete files
