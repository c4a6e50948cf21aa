"""Benchmark: a national dataset (5,000,000 people) through DuckDB, against the naive pandas way.

Measured in one run, each phase in its own process (so each has its own peak memory, read with
os.wait4 when the process ends):

1. synthesis of N people (``ipcreport.data.synth``, Parquet by default), plus one small extra site
   "BENCH" (the same rows whatever N is: see 4);
2. validation with DuckDB (``DuckDataset.check``) and partitioning by site
   (``DuckDataset.partition``), in one session as a build would run them;
3. the naive way, pandas ``check_dataset`` + ``partition_by_site``, at a size it can do
   (``--naive-people``, default 200,000), against DuckDB on the same dataset: the ratios;
4. one site's ``load_site`` (what its notebook does first) in a nation of 50,000 and of N
   people: the site BENCH has the same rows in both, so the times should match (ratio ~1).

    .venv/bin/python benchmarks/national_scale.py [--people 5000000] [--naive-people 200000]
        [--out /tmp/ipcreport-national] [--format parquet|csv] [--skip-naive] [--keep]

The scratch folder (--out) is deleted afterwards unless --keep (5,000,000 people take ~1.2 GB
as Parquet, ~10 GB as CSV, and as much again partitioned).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

TARGET_SECONDS = 600
TARGET_PEAK_GIB = 8.0
BENCH_SITE = "BENCH"
BENCH_PEOPLE = 5_000
SMALL_NATION = 50_000


# ---------------------------------------------------------------------------------------------
# phases (each runs in a child process: ``national_scale.py --phase NAME ARGS_JSON``)


def phase_synth(out: str, people: int, fmt: str, seed: int = 2015) -> dict:
    from ipcreport.data.synth import SynthConfig, synthesise

    started = time.perf_counter()
    truth = synthesise(Path(out), SynthConfig(people=people, seed=seed), format=fmt)
    synth_seconds = time.perf_counter() - started
    started = time.perf_counter()
    _append_bench_site(Path(out), fmt)
    return {"rows": truth["counts"]["rows"], "synth_seconds": synth_seconds,
            "bench_site_seconds": time.perf_counter() - started}


def _append_bench_site(folder: Path, fmt: str) -> None:
    """Add the site BENCH: BENCH_PEOPLE people drawn with a fixed seed whatever the nation's size
    (a one-site synthetic dataset, its site code and person ids renamed), appended to each table."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from ipcreport.data import contract as C
    from ipcreport.data.synth import SynthConfig, synthesise

    site_dir = folder.parent / f".{folder.name}.bench"
    shutil.rmtree(site_dir, ignore_errors=True)
    synthesise(site_dir, SynthConfig(sites=1, people=BENCH_PEOPLE, seed=99), format="parquet")
    for table in C.TABLES:
        extra = pq.read_table(site_dir / f"{table}.parquet")
        for name in ("site_code", "person_id"):
            if name in extra.column_names:
                column = extra.column(name)
                new = (pa.array([BENCH_SITE] * len(extra), pa.string()) if name == "site_code"
                       else pc.binary_join_element_wise("B", column, ""))
                extra = extra.set_column(extra.column_names.index(name), name, new)
        if table == "sites":
            extra = extra.set_column(extra.column_names.index("site_name"), "site_name",
                                     pa.array(["Benchmark site"], pa.string()))
        if table == "contracts":
            ids = pa.array([f"{BENCH_SITE}-BC{i + 1:02d}" for i in range(len(extra))], pa.string())
            extra = extra.set_column(extra.column_names.index("contract_id"), "contract_id", ids)
        if fmt == "csv":
            with open(folder / f"{table}.csv", "ab") as handle:  # the generator's own CSV dialect
                options = pacsv.WriteOptions(include_header=False, quoting_style="none" if table not in
                                             ("sites", "contracts") else "needed")
                pacsv.write_csv(extra, handle, write_options=options)
        else:
            path = folder / f"{table}.parquet"
            source = pq.ParquetFile(path)
            tmp = path.with_suffix(".tmp")
            with pq.ParquetWriter(tmp, source.schema_arrow, compression="zstd") as writer:
                for i in range(source.num_row_groups):
                    writer.write_table(source.read_row_group(i))
                writer.write_table(extra.cast(source.schema_arrow))
            os.replace(tmp, path)
    shutil.rmtree(site_dir)


def phase_duckdb(dataset: str, out: str) -> dict:
    from ipcreport.data.scale import DuckDataset

    work = Path(out) / ".duckdb-work"
    with DuckDataset(dataset, work_dir=work) as data:
        started = time.perf_counter()
        breaches = data.check()
        validate = time.perf_counter() - started
        errors = [str(b) for b in breaches if b.severity == "error"]
        if errors:
            return {"errors": errors[:10]}
        started = time.perf_counter()
        parts = data.partition(out, check=False)
        partition = time.perf_counter() - started
        timings = data.timings
    shutil.rmtree(work, ignore_errors=True)
    return {"validate_seconds": validate, "partition_seconds": partition, "sites": list(parts),
            "warnings": len(breaches), "timings": timings}


def phase_naive(dataset: str, out: str) -> dict:
    from ipcreport.data.dataset import check_dataset, partition_by_site

    started = time.perf_counter()
    data, breaches = check_dataset(dataset)
    validate = time.perf_counter() - started
    if data is None:
        return {"errors": [str(b) for b in breaches if b.severity == "error"][:10]}
    started = time.perf_counter()
    parts = partition_by_site(data, Path(out))
    return {"validate_seconds": validate, "partition_seconds": time.perf_counter() - started, "sites": list(parts)}


def phase_hashes(parts: str) -> dict:
    from ipcreport.data.scale import partition_sha256

    started = time.perf_counter()
    hashes = {p.name: partition_sha256(p) for p in sorted(Path(parts).glob("site=*"))}
    return {"seconds": time.perf_counter() - started, "sites": len(hashes)}


def phase_load_site(small: str, big: str, repeats: int = 15) -> dict:
    """load_site of the same site from both nations' partitions, alternating (so a busy machine
    slows both alike); the median of each, and a digest of the frames to show they are equal."""
    import hashlib

    import pandas as pd

    from ipcreport.data.dataset import load_site

    times: dict[str, list[float]] = {"small": [], "big": []}
    digests, rows = {}, {}
    for _ in range(repeats):
        for key, folder in (("small", small), ("big", big)):
            started = time.perf_counter()
            site = load_site(folder)
            times[key].append(time.perf_counter() - started)
    for key, folder in (("small", small), ("big", big)):
        site = load_site(folder)
        digest = hashlib.sha256()
        for table, frame in site.tables.items():
            digest.update(table.encode())
            digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
        digests[key], rows[key] = digest.hexdigest(), {t: len(f) for t, f in site.tables.items()}
    median = {key: sorted(v)[len(v) // 2] for key, v in times.items()}
    return {"seconds": median, "rows": rows["big"], "same": digests["small"] == digests["big"], "repeats": repeats}


PHASES = {f.__name__.removeprefix("phase_"): f for f in
          (phase_synth, phase_duckdb, phase_naive, phase_hashes, phase_load_site)}


# ---------------------------------------------------------------------------------------------
# the parent: run each phase in a child, with its wall time and peak memory


def run(phase: str, *args) -> dict:
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, __file__, "--phase", phase, json.dumps(args)],
                             stdout=subprocess.PIPE, text=True)
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)  # reaped here, so its rusage is this child's alone
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"phase {phase} failed (exit {child.returncode})")
    result = json.loads(output.strip().splitlines()[-1])
    result["wall_seconds"] = time.perf_counter() - started
    result["peak_gib"] = usage.ru_maxrss * 1024 / 2**30  # ru_maxrss is in KiB on Linux
    if "errors" in result:
        raise SystemExit(f"phase {phase}: the dataset is invalid: {result['errors']}")
    return result


def gib(x: float) -> str:
    return f"{x:.2f} GiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=5_000_000)
    parser.add_argument("--naive-people", type=int, default=200_000)
    parser.add_argument("--out", type=Path, default=Path("/tmp/ipcreport-national"), help="scratch folder")
    parser.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    parser.add_argument("--skip-naive", action="store_true", help="skip the pandas comparison")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("args", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:  # child mode
        print(json.dumps(PHASES[args.phase](*json.loads(args.args))))
        return

    import duckdb

    from ipcreport.data.scale import DEFAULT_MEMORY_LIMIT, DEFAULT_THREADS

    out = args.out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    print(f"National scale benchmark: {os.cpu_count()} cores, DuckDB {duckdb.__version__} "
          f"(memory_limit {DEFAULT_MEMORY_LIMIT}, threads {DEFAULT_THREADS}), {args.format}, scratch {out}")
    try:
        # 1-2: the nation
        big = str(out / f"nation-{args.people}")
        synth = run("synth", big, args.people, args.format)
        rows = ", ".join(f"{t} {n:,}" for t, n in synth["rows"].items())
        print(f"\n{args.people:,} people ({rows}; plus site {BENCH_SITE}, {BENCH_PEOPLE:,} people)")
        print(f"  synthesis        {synth['synth_seconds']:7.1f} s   (+{synth['bench_site_seconds']:.1f} s adding "
              f"{BENCH_SITE})   peak {gib(synth['peak_gib'])}")
        duck = run("duckdb", big, str(out / f"parts-{args.people}"))
        print(f"  validation       {duck['validate_seconds']:7.1f} s   (DuckDB; {duck['warnings']} warning(s), no errors)")
        print(f"  partitioning     {duck['partition_seconds']:7.1f} s   ({len(duck['sites'])} sites)"
              f"   peak of both {gib(duck['peak_gib'])}")
        total = synth["synth_seconds"] + duck["validate_seconds"] + duck["partition_seconds"]
        peak = max(synth["peak_gib"], duck["peak_gib"])
        print(f"  synthesis + validation + partitioning: {total:.0f} s (target {TARGET_SECONDS} s: "
              f"{'met' if total <= TARGET_SECONDS else 'MISSED'}); peak {gib(peak)} "
              f"(target {TARGET_PEAK_GIB:g} GiB: {'met' if peak <= TARGET_PEAK_GIB else 'MISSED'})")
        slow = sorted(duck["timings"], key=lambda t: -t[1])[:6]
        print("  slowest statements: " + "; ".join(f"{label} {sec:.1f} s" for label, sec in slow))
        hashes = run("hashes", str(out / f"parts-{args.people}"))
        print(f"  per-site content hashes (partition_sha256, all sites): {hashes['seconds']:.1f} s")
        shutil.rmtree(out / f"nation-{args.people}", ignore_errors=True)  # disk: the partition is what is left to read

        # 3: the naive way at a size it can do
        if not args.skip_naive:
            mid = str(out / f"nation-{args.naive_people}")
            run("synth", mid, args.naive_people, args.format)
            naive = run("naive", mid, str(out / "naive-parts"))
            fast = run("duckdb", mid, str(out / "duck-parts"))
            n_s = naive["validate_seconds"] + naive["partition_seconds"]
            d_s = fast["validate_seconds"] + fast["partition_seconds"]
            print(f"\nNaive way at {args.naive_people:,} people (pandas check_dataset + partition_by_site) vs DuckDB:")
            print(f"  pandas  validation {naive['validate_seconds']:6.1f} s + partitioning {naive['partition_seconds']:6.1f} s"
                  f" = {n_s:6.1f} s   peak {gib(naive['peak_gib'])}")
            print(f"  DuckDB  validation {fast['validate_seconds']:6.1f} s + partitioning {fast['partition_seconds']:6.1f} s"
                  f" = {d_s:6.1f} s   peak {gib(fast['peak_gib'])}")
            print(f"  ratio naive / DuckDB: time {n_s / d_s:.1f}x, peak memory {naive['peak_gib'] / fast['peak_gib']:.1f}x")
            scale = args.people / args.naive_people
            print(f"  (pandas holds every table in memory: linearly, {args.people:,} people would need "
                  f"~{gib(naive['peak_gib'] * scale)} and ~{n_s * scale:.0f} s: an extrapolation, not a measurement)")
            for name in ("naive-parts", "duck-parts", f"nation-{args.naive_people}"):
                shutil.rmtree(out / name, ignore_errors=True)

        # 4: one site's load, small nation vs big nation
        small = str(out / f"nation-{SMALL_NATION}")
        run("synth", small, SMALL_NATION, args.format)
        run("duckdb", small, str(out / f"parts-{SMALL_NATION}"))
        load = run("load_site", str(out / f"parts-{SMALL_NATION}" / f"site={BENCH_SITE}"),
                   str(out / f"parts-{args.people}" / f"site={BENCH_SITE}"))
        same = "the same rows" if load["same"] else "DIFFERENT rows (unexpected)"
        small_s, big_s = load["seconds"]["small"], load["seconds"]["big"]
        print(f"\nOne site's load_site ({BENCH_SITE}: {load['rows']['people']:,} people, "
              f"{sum(load['rows'].values()):,} rows; {same} in both nations; median of {load['repeats']}, alternating):")
        print(f"  nation of {SMALL_NATION + BENCH_PEOPLE:,} people: {small_s:.3f} s   "
              f"nation of {args.people + BENCH_PEOPLE:,}: {big_s:.3f} s   ratio {big_s / small_s:.2f}")
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 2**30
        print(f"\nPeak memory (ru_maxrss) of the largest process of this run: {gib(children)}")
    finally:
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
