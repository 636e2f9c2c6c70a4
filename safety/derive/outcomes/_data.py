"""The outcome rule tables (safety/data/*.csv) as temp tables, read once per derivation run."""
from __future__ import annotations

from pathlib import Path

from safety.core.files import read_data_csv
from safety.core.sql import temp_table

DATA_DIR = Path(__file__).resolve().parents[2] / "data"

# file -> (temp table, {column: SQL type}); every column named here must be in the file. A file read into statement
# parameters instead (malignancy.KIND_PARAMS) has no table.
RULE_FILES = {
    "infection_classes.csv": ("_infection_classes", {"pattern": "VARCHAR", "pathogen_class": "VARCHAR",
                                                     "pathogen": "VARCHAR", "invasive_mould": "BOOLEAN",
                                                     "priority": "INTEGER", "names": "VARCHAR"}),
    "infection_support.csv": ("_infection_support", {"pattern": "VARCHAR", "support": "VARCHAR", "priority": "INTEGER"}),
    "death_causes.csv": ("_death_causes", {"pattern": "VARCHAR", "cause_category": "VARCHAR",
                                           "relapse_related": "BOOLEAN", "priority": "INTEGER",
                                           "also_reads": "VARCHAR"}),
    "malignancy_terms.csv": (None, {"pattern": "VARCHAR", "kind": "VARCHAR"}),
    "tls_cairo_bishop.csv": ("_tls_rules", {"criterion": "VARCHAR", "tests": "VARCHAR", "population": "VARCHAR",
                                            "direction": "VARCHAR",
                                            "absolute_si": "DOUBLE", "unit": "VARCHAR", "pct_change": "DOUBLE"}),
    "pc_unit_conversions.csv": ("_pc_unit_conversions", {"from_unit": "VARCHAR", "to_unit": "VARCHAR",
                                                         "factor": "DOUBLE"}),
    "pp_parameters.csv": ("_pp_parameters", {"pptestcd": "VARCHAR", "parameter": "VARCHAR", "tolerance_kind": "VARCHAR",
                                             "tolerance": "DOUBLE", "interval_end_day": "DOUBLE"}),
}


def read_rules(name: str) -> list[dict]:
    """Rows of one rule file; a missing column fails loudly with the file name."""
    _, cols = RULE_FILES[name]
    return [r for _, r in read_data_csv(DATA_DIR / name, tuple(cols), exact=False)]


def install(con, name: str) -> str:
    """Create the temp table for one rule file and return its name."""
    table, cols = RULE_FILES[name]
    if table is None:
        raise ValueError(f"{name} is read into statement parameters: it has no table")
    # an empty cell of a typed column is no value (NULL), never a cast error
    rows = [tuple((r[c].lower() == "true") if cols[c] == "BOOLEAN" else
                  (None if r[c] == "" and cols[c] != "VARCHAR" else r[c]) for c in cols)
            for r in read_rules(name)]
    return temp_table(con, table, cols, rows)
