"""A dataset as it would have been extracted on an earlier date.

Everything observed after the earlier date is dropped (people enrolled later, spend, events and
questionnaires dated later, budget periods that had not started); exits after it had not
happened yet. Planned dates (budget period ends, contract end dates) stay as they are. The
demo uses it to build last quarter's extract of the same programme, so a new user sees the
"since last quarter" table; an analyst can use it to replay a quarter that was never briefed.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pandas as pd
import yaml

from .dataset import load_dataset

# table -> the date column after which a row was not yet observed
OBSERVED_BY = {"people": "index_date", "budgets": "period_start", "spend": "month", "events": "event_date",
               "surveys": "survey_date", "services": "month"}
EXIT_COLUMNS = ("exit_date", "exit_reason")


def as_of(tables: dict[str, pd.DataFrame], extract_date: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """The tables as they stood on ``extract_date``."""
    people = tables["people"]
    people = people[people["index_date"] <= extract_date].copy()
    later_exit = people["exit_date"].notna() & (people["exit_date"] > extract_date)
    for column in EXIT_COLUMNS:
        if column in people:
            people.loc[later_exit, column] = None
    kept = set(people["person_id"])
    out = {}
    for name, frame in tables.items():
        if name == "people":
            out[name] = people
        elif name in OBSERVED_BY:
            out[name] = frame[(frame[OBSERVED_BY[name]] <= extract_date) & frame["person_id"].isin(kept)]
        else:
            out[name] = frame
    return out


def write_snapshot(source: str | Path, target: str | Path, extract_date: str) -> Path:
    """Write the dataset at ``source`` as extracted on ``extract_date`` to ``target`` (CSV tables,
    dataset.yaml with the new date). The folder appears whole or not at all."""
    dataset = load_dataset(source)
    when = pd.Timestamp(extract_date)
    if when >= dataset.meta.extract_date:
        raise ValueError(f"{extract_date} is not before the dataset's extract date "
                         f"{dataset.meta.extract_date:%Y-%m-%d}")
    target = Path(target)
    staging = Path(tempfile.mkdtemp(dir=target.parent if target.parent.exists() else None, prefix=".snapshot-"))
    try:
        for name, frame in as_of(dataset.tables, when).items():
            frame.to_csv(staging / f"{name}.csv", index=False, date_format="%Y-%m-%d")
        meta = yaml.safe_load((Path(source) / "dataset.yaml").read_text(encoding="utf-8"))
        meta.update(extract_date=when.date(), name=f"{meta['name']} as of {when:%d %B %Y}")
        (staging / "dataset.yaml").write_text(yaml.safe_dump(meta, sort_keys=False), encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
