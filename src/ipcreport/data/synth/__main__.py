"""``python -m ipcreport.data.synth OUT_DIR [...]``."""

from .generator import main

raise SystemExit(main())
