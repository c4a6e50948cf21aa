"""The figures: pure functions, frames in and frames or small dataclasses out; no files, no charts, no text for readers."""
