"""How the briefings print money: one rule for the text, tables, charts and the index page.

A leaf module (no plotting, no pandas) so the build's index page can use it without importing
the chart library.
"""

from __future__ import annotations


def gbp(value: float, _pos=None) -> str:
    """Money as a briefing prints it: £9.7m, £12k, £850, -£415k."""
    sign, size = ("-" if value < 0 else ""), abs(value)
    if size >= 1e6:
        return f"{sign}£{size / 1e6:,.1f}m"
    if size >= 1e3:
        return f"{sign}£{size / 1e3:,.0f}k"
    return f"{sign}£{size:,.0f}"
