"""The hover text a Plotly trace shows, read as the browser fills it in."""
from __future__ import annotations

import re


def _get(trace, key):
    try:
        value = trace[key]
    except KeyError:
        return None
    return value


def hover_text(trace, point: int = 0) -> str:
    """``trace``'s hovertemplate (a Plotly trace or its JSON dict) with the ``point``'s customdata and the trace's meta
    put in place of ``%{customdata}``, ``%{customdata[i]}``, ``%{meta}`` and ``%{meta[i]}``; other placeholders stay."""
    custom = _get(trace, "customdata")
    row = custom[point] if custom is not None and len(custom) else None
    values = {"customdata": row, "meta": _get(trace, "meta")}

    def fill(m):
        value = values[m.group(1)]
        return str(value if m.group(2) is None else value[int(m.group(2))])
    return re.sub(r"%\{(customdata|meta)(?:\[(\d+)\])?\}", fill, _get(trace, "hovertemplate") or "")
