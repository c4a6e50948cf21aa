"""One error path for the command line: every user mistake is a message naming what is wrong
and exit 2, with no traceback and nothing written; parameters are checked like the data."""

from __future__ import annotations

import pytest
import yaml

from ipcreport.pipeline.params import NOTEBOOK_PARAMETERS, ParamsError, load_params

from conftest import run_cli


def assert_mistake(done, *phrases, root=None):
    """Exit 2, a message with every phrase, no Python traceback; nothing written under root."""
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    for phrase in phrases:
        assert phrase in done.stderr, (phrase, done.stderr)
    if root is not None:
        assert not (root / "work").exists() and not (root / "reports").exists()


def build(dataset, root, *extra):
    return run_cli("build", dataset, "--reports", root / "reports", "--work", root / "work", *extra, cwd=root)


@pytest.mark.parametrize("command", ["build", "status", "validate"])
def test_a_missing_dataset_folder(tmp_path, command):
    extra = ("--work", tmp_path / "work") if command != "validate" else ()
    done = run_cli(command, tmp_path / "nowhere", *extra, cwd=tmp_path)
    assert_mistake(done, "nowhere: no such dataset folder", root=tmp_path)


@pytest.mark.parametrize("content, phrase", [
    (b"- name: a list\n- extract_date: 2026-09-30\n", "dataset.yaml: must be a mapping"),
    (b"name: caf\xe9 \xff\nextract_date: 2026-09-30\nsynthetic: true\n", "dataset.yaml: not UTF-8"),
    (b"name: x\nextract_date: 2099-01-01\nsynthetic: true\n", "extract_date: is in the future"),
])
def test_a_broken_dataset_yaml(dataset_copy, tmp_path, content, phrase):
    (dataset_copy / "dataset.yaml").write_bytes(content)
    assert_mistake(build(dataset_copy, tmp_path), phrase, root=tmp_path)
    assert_mistake(run_cli("validate", dataset_copy, "--engine", "duckdb", cwd=tmp_path), phrase)


def test_a_stray_corrupt_workbook(dataset_copy, tmp_path):
    (dataset_copy / "notes.xlsx").write_bytes(b"PK\x03\x04 not really a workbook")
    assert_mistake(build(dataset_copy, tmp_path), "notes.xlsx: not a readable Excel workbook", root=tmp_path)


def test_dask_without_a_scheduler(small_dataset, tmp_path):
    assert_mistake(build(small_dataset, tmp_path, "--executor", "dask"), "--executor dask needs --scheduler",
                   root=tmp_path)


def test_wrong_parameters_are_all_reported_at_once_before_anything_runs(small_dataset, tmp_path):
    params = tmp_path / "bad.yaml"
    params.write_text(yaml.safe_dump({
        "reporting_months": "twelve",
        "risk": {"simulation_draws": "many", "horizon_months": -3, "typo": 1},
        "disclosure": {"rounding": 0},
        "formats": ["html", "pptx"],
        "sites": {"E99999999": {"risk": {"seed": 1}}},
    }))
    done = build(small_dataset, tmp_path, "--params", params)
    assert_mistake(done, "reporting_months must be a whole number, not 'twelve'",
                   "risk.simulation_draws must be a whole number, not 'many'",
                   "risk.horizon_months must be between 1 and 120, not -3", "unknown setting risk.typo",
                   "disclosure.rounding must be between 1 and 100, not 0", "formats must be a list among",
                   root=tmp_path)
    # the file's mistakes first; an override for a site the dataset lacks once the file is right
    params.write_text(yaml.safe_dump({"sites": {"E99999999": {"risk": {"seed": 1}}}}))
    assert_mistake(build(small_dataset, tmp_path, "--params", params),
                   "sites.E99999999: no site with this code in the dataset", root=tmp_path)
    assert_mistake(run_cli("status", small_dataset, "--params", params, "--work", tmp_path / "work", cwd=tmp_path),
                   "sites.E99999999: no site", root=tmp_path)


def test_every_parameter_row_is_checked_for_type_and_range(tmp_path):
    """Each row of NOTEBOOK_PARAMETERS refuses a string, and a number past its range."""
    path = tmp_path / "p.yaml"
    for name, row in NOTEBOOK_PARAMETERS.items():
        section, key, default = row[:3]
        for bad in ["text", *([row[3][1] + 1] if len(row) > 3 and row[3][1] is not None else [])]:
            block = {key: bad} if section is None else {section: {key: bad}}
            path.write_text(yaml.safe_dump(block))
            with pytest.raises(ParamsError, match=key):
                load_params(path)
        block = {key: default} if section is None else {section: {key: default}}
        path.write_text(yaml.safe_dump(block))
        assert load_params(path).settings[name] == default


def test_disclosure_below_the_minimum_needs_a_reason_that_is_logged(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("disclosure: {suppress_threshold: 0}\n")
    with pytest.raises(ParamsError, match="override_reason"):
        load_params(path)
    path.write_text("sites: {E1: {disclosure: {rounding: 1}}}\n")
    with pytest.raises(ParamsError, match="sites.E1: disclosure below the documented minimum"):
        load_params(path)
    path.write_text("disclosure: {suppress_threshold: 3, override_reason: 'ONS agreed, ref 42'}\n")
    params = load_params(path)
    assert params.settings["suppress_threshold"] == 3 and params.override_reason == "ONS agreed, ref 42"


def test_the_cache_key_follows_what_the_parameters_say_not_where_the_file_is(tmp_path):
    text = "run: r\nrisk: {seed: 9}\n"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "p.yaml").write_text(text)
    (tmp_path / "b" / "p.yaml").write_text("# moved\n" + text)
    first, moved = load_params(tmp_path / "a" / "p.yaml"), load_params(tmp_path / "b" / "p.yaml")
    assert first.source == moved.source == "p.yaml"  # a name, never a machine path
    assert first.content_sha256 == moved.content_sha256
    (tmp_path / "b" / "p.yaml").write_text("run: r\nrisk: {seed: 10}\n")
    assert load_params(tmp_path / "b" / "p.yaml").content_sha256 != first.content_sha256


@pytest.mark.parametrize("option", ["--reports", "--work"])
@pytest.mark.parametrize("mount, phrase", [("ro", "cannot write there"), ("size=64k", "MB free there")])
def test_a_read_only_or_full_output_folder_is_a_message_and_exit_2(small_dataset, tmp_path, option, mount, phrase):
    """A tmpfs mounted read-only, or one with 64 KB of room (as root), for the reports or work."""
    from test_faults import mounted

    with mounted(tmp_path / "mnt", mount) as folder:
        if folder is None:
            pytest.skip("cannot mount a tmpfs here (needs root)")
        other = "--work" if option == "--reports" else "--reports"
        done = run_cli("build", small_dataset, option, folder / "out", other, tmp_path / "other", cwd=tmp_path)
        assert_mistake(done, f"{option} {folder / 'out'}", phrase)
        assert not (tmp_path / "other").exists()
