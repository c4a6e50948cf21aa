"""This folder ships inside the package as ipcreport.notebooks (see pyproject.toml), so an
installed ipcreport finds its notebooks through importlib.resources. No code lives here."""
