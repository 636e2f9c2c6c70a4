"""Cell-therapy toxicities: ASTCT CRS/ICANS grades, episodes, discrepancies, ICAHT, biomarkers."""
