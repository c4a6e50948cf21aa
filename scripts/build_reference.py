"""Build data/reference/areas.csv: England's upper-tier local authorities with population,
deprivation, NHS region and the share of people aged 66+.

Re-runnable and deterministic. Reads the public reference files copied into the shared data
folder (see that folder's PROVENANCE.md) and writes one CSV, sorted by area_code.

    python scripts/build_reference.py [SHARED_DATA_DIR] [--out data/reference/areas.csv]

SHARED_DATA_DIR defaults to ../shared/data relative to the repository root.

Derivation (documented again in data/reference/PROVENANCE.md):
- areas: mySociety current authorities with nation England, current-authority True and a GSS
  code starting E06 (unitary), E08 (metropolitan district), E09 (London borough) or E10 (county).
- imd_score: IMD 2019 average score joined by GSS code; empty where the 2019 code does not match
  a current authority (areas reorganised since 2019).
- nhs_region: the area's lower-tier districts (LAD21 codes) -> April-2021 CCGs -> NHS region;
  the most common region over the (district, CCG) pairs; ties go to the region whose CCGs are
  most specific to the area (sum over pairs of 1 / districts per CCG), then alphabetically. Districts
  are the area itself (unitaries, metropolitan districts, London boroughs), a county's districts
  (mySociety `county-la`) and, for authorities created after April 2021, the abolished
  authorities they replaced (mySociety `replaced-by`, followed transitively).
- share_age_66_plus: the CCG shares ("Age 66+" / "All Ages") of the CCGs the area maps to,
  weighted by the area's residents in each CCG, estimated as each district's ONS mid-2020
  population split evenly over the CCGs it maps to. A CCG-level approximation: every area wholly
  inside one CCG gets that CCG's share.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = REPO.parent / "shared" / "data"
DEFAULT_OUT = REPO / "data" / "reference" / "areas.csv"

UPPER_TIER_PREFIXES = ("E06", "E08", "E09", "E10")
OUT_COLUMNS = ("area_code", "area_name", "population", "imd_score", "nhs_region", "share_age_66_plus")

# Checks from the shared PROVENANCE.md (ONS mid-2020 and IMD 2019 File 11).
EXPECTED_AREAS = 153
EXPECTED_TOTAL_POPULATION = 56_550_138
EXPECTED_BIRMINGHAM = ("E08000025", 1_140_525, 38.067)


def _read(shared: Path, name: str) -> pd.DataFrame:
    # utf-8-sig strips the BOM of the CCG population file; keep codes as text.
    return pd.read_csv(shared / name, encoding="utf-8-sig", dtype=str, keep_default_na=False)


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def build_areas(shared: Path) -> pd.DataFrame:
    las = _read(shared, "uk_local_authorities_current.csv")
    imd = _read(shared, "imd2019_utla_summary.csv")
    lookup = _read(shared, "ccg21_lad21_lookup.csv")
    ccg = _read(shared, "ccg21_population_stp21_region.csv")

    current = las["current-authority"].str.strip() == "True"
    upper = las[
        (las["nation"] == "England") & current & las["gss-code"].str[:3].isin(UPPER_TIER_PREFIXES)
    ].copy()

    # Predecessors: local-authority-code -> codes of authorities it replaced (transitively).
    replaced: dict[str, list[str]] = {}
    for code, successors in zip(las["local-authority-code"], las["replaced-by"]):
        for succ in _split(successors):
            replaced.setdefault(succ, []).append(code)
    gss_of = dict(zip(las["local-authority-code"], las["gss-code"]))
    county_of = dict(zip(las["local-authority-code"], las["county-la"]))
    type_of = dict(zip(las["local-authority-code"], las["local-authority-type"]))

    lad_codes = set(lookup["LAD21CD"])
    ccgs_of_lad = lookup.groupby("LAD21CD")["CCG21CD"].apply(lambda s: sorted(set(s))).to_dict()
    ccg = ccg.set_index("CCG Code")
    region_of_ccg = ccg["NHSER21 Name"].to_dict()

    def districts(la_code: str) -> list[str]:
        """LAD21 codes covering an upper-tier area."""
        members = {la_code}
        # a county's own districts
        members |= {c for c, cty in county_of.items() if cty == la_code}
        # authorities it replaced, transitively; skip abolished counties (their districts are
        # reached directly, and a county may have been split between several successors)
        stack = [la_code]
        while stack:
            for prev in replaced.get(stack.pop(), []):
                if prev not in members and type_of.get(prev) != "CTY":
                    members.add(prev)
                    stack.append(prev)
        return sorted({gss_of[m] for m in members if gss_of.get(m) in lad_codes})

    lads_per_ccg = lookup.groupby("CCG21CD")["LAD21CD"].nunique().to_dict()
    pop_of_gss = dict(zip(las["gss-code"], las["pop-2020"]))
    share_of_ccg = ccg["Age 66+"].astype(int) / ccg["All Ages"].astype(int)

    regions, shares = [], []
    for la_code in upper["local-authority-code"]:
        lads = districts(la_code)
        if not lads:
            raise SystemExit(f"no LAD21 district found for {la_code}")
        pairs = [(lad, c) for lad in lads for c in ccgs_of_lad[lad]]
        # Region: most common over (district, CCG) pairs. Ties (an area on a CCG boundary, e.g.
        # Buckinghamshire: Buckinghamshire CCG and Bedfordshire, Luton and Milton Keynes CCG) go to
        # the region whose CCGs are most specific to the area (sum of 1 / districts per CCG), then
        # alphabetically.
        counts = Counter(region_of_ccg[c] for _, c in pairs)
        specific = Counter()
        for _, c in pairs:
            specific[region_of_ccg[c]] += 1.0 / lads_per_ccg[c]
        regions.append(min(counts, key=lambda r: (-counts[r], -specific[r], r)))
        # Share 66+: CCG shares weighted by the area's residents in each CCG, estimated as each
        # district's ONS mid-2020 population split evenly over the CCGs it maps to.
        num = den = 0.0
        for lad, c in pairs:
            w = float(pop_of_gss[lad]) / len(ccgs_of_lad[lad])
            num += w * share_of_ccg[c]
            den += w
        shares.append(round(num / den, 4))

    imd_score = imd.set_index("Upper Tier Local Authority District code (2019)")["IMD - Average score"]
    out = pd.DataFrame(
        {
            "area_code": upper["gss-code"].to_numpy(),
            "area_name": upper["nice-name"].to_numpy(),
            "population": upper["pop-2020"].astype(float).round().astype("int64").to_numpy(),
            "imd_score": upper["gss-code"].map(imd_score).astype(float).to_numpy(),
            "nhs_region": regions,
            "share_age_66_plus": shares,
        }
    )
    return out.sort_values("area_code", ignore_index=True)[list(OUT_COLUMNS)]


def check(areas: pd.DataFrame) -> None:
    assert len(areas) == EXPECTED_AREAS, len(areas)
    assert areas["area_code"].is_unique
    assert int(areas["population"].sum()) == EXPECTED_TOTAL_POPULATION, areas["population"].sum()
    code, pop, score = EXPECTED_BIRMINGHAM
    row = areas.set_index("area_code").loc[code]
    assert int(row["population"]) == pop and abs(row["imd_score"] - score) < 1e-9, row
    assert areas["nhs_region"].nunique() == 7, areas["nhs_region"].unique()
    assert areas["share_age_66_plus"].between(0.05, 0.4).all()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shared", nargs="?", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    areas = build_areas(args.shared)
    check(areas)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".csv.tmp")
    areas.to_csv(tmp, index=False, lineterminator="\n")
    tmp.replace(args.out)
    missing = areas.loc[areas["imd_score"].isna(), "area_name"].tolist()
    print(
        f"wrote {args.out} ({len(areas)} areas, population {areas['population'].sum():,}; "
        f"no IMD 2019 score for {len(missing)}: {', '.join(missing)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
