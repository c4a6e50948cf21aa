"""What a reader sees: sections, charts, disclosure control, escaping, results and the briefings the notebooks call."""
