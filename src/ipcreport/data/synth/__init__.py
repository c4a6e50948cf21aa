"""Deterministic synthetic IPC datasets with known effects.

:func:`synthesise` writes a dataset folder in the shape of the data contract (shared/contract.md):
the seven tables as CSV, ``dataset.yaml`` and ``truth.json`` (the configuration plus the facts
the generator put in, so analyses can be tested against a known answer).

Design:

* Everything is vectorised with numpy; there is no per-person Python loop. People-level arrays
  are held in memory (a few hundred MB at 5 million people); the two big tables (spend, events)
  are generated and written in blocks of people, so their size never sits in memory at once.
* Randomness comes from independent streams (``numpy.random.SeedSequence([seed, stream])``) per
  table, so one config always gives byte-identical files, and changing how one table is drawn
  does not reshuffle the others. Per-site draws are made for all 153 areas, so the first nine
  sites look the same whether ``sites`` is 9 or 153.
* Numbers come from shared/domain.md where it has one (cited beside the constant); everything
  else is marked "assumption": plausible calibration, never a finding.

The sites are real English upper-tier local authorities (names, NHS regions, ONS mid-2020
population and IMD 2019 average score from data/reference/areas.csv): ``sites=153`` is every
area in England, with people spread in proportion to population (a Birmingham-sized site holds
about 2% of them). The first 30 were chosen only to span NHS regions and deprivation; none is an
IPC demonstrator site and nothing in the generated data describes them.

The pieces, one job each: :mod:`.params` (configuration and calibration), :mod:`.people` (sites
and people), :mod:`.budgets` (budgets and spend), :mod:`.activity` (events), :mod:`.questionnaires`
(surveys), :mod:`.contracts` (block contracts and outside services), :mod:`.truth` (truth.json and
dataset.yaml), :mod:`.sinks` (files or memory), :mod:`.arrays` (shared helpers) and
:mod:`.generator` (the order they run in, :func:`synthesise`, :func:`generate_tables`).
"""

from __future__ import annotations

from .generator import generate_tables, main, synthesise
from .params import *  # noqa: F401,F403  (the calibration constants, for studies that re-derive them)
from .params import FORMATS, SITE_AREAS, SynthConfig

__all__ = ["SynthConfig", "synthesise", "generate_tables", "SITE_AREAS", "FORMATS"]
