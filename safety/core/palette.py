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
