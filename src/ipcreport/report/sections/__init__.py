"""The briefing's sections: each computes its figures from a site's data, records its headline
metrics, builds its publishable tables (disclosure control applied) and words its key messages.

The analysis itself lives in :mod:`ipcreport.analysis`; a section only chooses, combines and
presents. The site notebook shows one section after another.
"""
