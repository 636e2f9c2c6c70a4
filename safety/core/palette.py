"""Grade colours shared by every chart, table and export (colour-blind safe, after Okabe & Ito).

Grade 0 is neutral grey; 1-4 run from sky blue through yellow and orange to vermillion; 5 is black.
Text on each colour uses ``GRADE_TEXT`` for contrast.
"""
GRADE_COLORS = {0: "#D9D9D9", 1: "#56B4E9", 2: "#F0E442", 3: "#E69F00", 4: "#D55E00", 5: "#000000"}
GRADE_TEXT = {0: "#000000", 1: "#000000", 2: "#000000", 3: "#000000", 4: "#FFFFFF", 5: "#FFFFFF"}
MISSING_COLOR = "#FFFFFF"


def grade_color(grade) -> str:
    """Colour for a grade (int-like); white for missing."""
    try:
        return GRADE_COLORS[int(grade)]
    except (TypeError, ValueError, KeyError):
        return MISSING_COLOR


# The lines a stopping or escalation rule draws, one per column of stopping_boundaries: (legend, colour, dash).
# The app's chart and the packet's figure both read them here.
BOUNDARY_LINES = {
    "stop_if_events_ge": ("Stop at or above", GRADE_COLORS[4], "solid"),
    "eliminate_if_ge": ("Eliminate dose (and higher) at or above", "#000000", "solid"),
    "deescalate_if_ge": ("De-escalate at or above", GRADE_COLORS[3], "dash"),
    "escalate_if_le": ("Escalate at or below", "#009E73", "dot"),
}
