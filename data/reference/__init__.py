"""This folder ships inside the package as ipcreport.reference (see pyproject.toml), so an
installed ipcreport finds areas.csv through importlib.resources. No code lives here."""
