"""A `cdp run` of declared inputs in a project copy, and the one run the input examples share.

`declared_run` is the sample landing with the Segment exports as the preset's warehouse tables
(examples/presets/segment_warehouse/, no segment_* landing files), a lead-ads export in the landing
folder (examples/inputs/lead_ads.yml) and an app-installs table in the warehouse
(examples/inputs/app_installs.yml): tests/test_inputs_examples.py and tests/test_inputs_presets.py
read it (one whole run instead of one per module), each comparing with the built-in run
(`sample_pipeline_run`) only the people the other module's inputs do not touch.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import yaml

from engine_support.pipeline import pipeline_env
from engine_support.project import project_copy

REPO = Path(__file__).resolve().parent.parent.parent
PRESETS = REPO / "examples" / "presets" / "segment_warehouse"
EXAMPLES = (REPO / "examples" / "inputs" / "lead_ads.yml",
            REPO / "examples" / "inputs" / "app_installs.yml")
SEGMENT_TABLES = {"identifies": "segment_identifies.csv", "tracks": "segment_tracks.csv",
                  "pages": "segment_pages.csv"}
SEGMENT_TIME_COLUMNS = {"timestamp", "received_at", "sent_at", "original_timestamp"}


def declarations(paths: list[Path]) -> list[dict]:
    return [yaml.safe_load(path.read_text()) for path in paths]


# the sources of the two input sets: the names their declarations give them
EXAMPLE_SOURCES = tuple(d["input"] for d in declarations(list(EXAMPLES)))
PRESET_SOURCES = tuple(d["input"] for d in declarations(sorted(PRESETS.glob("*.yml"))))
# those of the preset that give profile attributes (names, email, phone): identifies only
PRESET_ATTRIBUTE_SOURCES = tuple(d["input"] for d in declarations(sorted(PRESETS.glob("*.yml")))
                                 if d.get("attributes"))


@dataclass
class Run:
    project: Path
    env: dict[str, str]
    output: str

    def sql(self, query: str) -> pd.DataFrame:
        con = duckdb.connect(self.env["CDP_WAREHOUSE"], read_only=True)
        try:
            return con.execute(query).df()
        finally:
            con.close()


def cdp_run(root: Path, landing: Path, inputs: list[Path], extra: dict[str, str] | None = None,
            before: object = None) -> Run:
    """`cdp run` in a copy of the project with CDP_INPUTS_DIR holding only `inputs`, unchanged;
    `before` gets the warehouse path first (to create tables an input reads in place)."""
    project = project_copy(root)
    inputs_dir = root / "declared"
    inputs_dir.mkdir()
    for path in inputs:
        shutil.copy(path, inputs_dir / path.name)
    env = pipeline_env(root, landing, "duckdb",
                       {"CDP_INPUTS_DIR": str(inputs_dir), **(extra or {})})
    if callable(before):
        before(Path(env["CDP_WAREHOUSE"]))
    result = subprocess.run([sys.executable, "-m", "orchestration.cli", "run"], cwd=project,
                            env=env, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return Run(project=project, env=env, output=result.stdout + result.stderr)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def unique_crm_contacts(landing: Path, count: int) -> list[dict[str, str]]:
    """CRM contacts whose email no other contact has, with a name (the leads' known people)."""
    rows = read_csv(landing / "crm_contacts.csv")
    by_email: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        if row["email"]:
            by_email.setdefault(row["email"].strip().lower(), []).append(row)
    picked = [group[0] for email, group in sorted(by_email.items())
              if len({r["contact_id"] for r in group}) == 1 and "@" in email
              and group[0]["last_name"]]
    return picked[:count]


def known_user_ids(landing: Path, count: int) -> list[str]:
    rows = read_csv(landing / "segment_identifies.csv")
    return sorted({row["user_id"] for row in rows if row["user_id"]})[:count]


def lead_rows(landing: Path) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Leads of four CRM contacts (another spelling of their address) and of three strangers;
    the `_` keys are what the tests know about them, not columns of the export."""
    known = []
    for index, contact in enumerate(unique_crm_contacts(landing, 4)):
        known.append({
            "lead_id": f"lead-k{index}", "created_time": f"2026-06-0{index + 1}T10:00:00Z",
            # another spelling of the CRM address: capitals and spaces
            "email": f"  {contact['email'].upper()} ", "phone_number": "", "country": "",
            # their own surname (a different one would make the mailbox a couple's: junk), a
            # nickname as first name
            "platform_user_id": f"fbk{index}", "first_name": "Leadname",
            "last_name": contact["last_name"].lower(), "marketing_opt_in": "yes",
            "campaign_name": "summer", "form_name": "newsletter",
            "_contact_id": contact["contact_id"], "_last_name": contact["last_name"]})
    strangers = []
    for index in range(3):
        strangers.append({
            "lead_id": f"lead-s{index}", "created_time": f"2026-07-0{index + 1}T10:00:00Z",
            "email": f"stranger.lead{index}@leadmail.example.net",
            "phone_number": f"030 1234 56{index}{index}", "country": "DE",
            "platform_user_id": f"fbs{index}", "first_name": f"zoë{index}",
            "last_name": "o'leary", "marketing_opt_in": "yes" if index == 0 else "no",
            "campaign_name": "autumn", "form_name": "trial",
            "_contact_id": "", "_last_name": ""})
    return known, strangers


def install_rows(sample: Path) -> list[dict[str, str]]:
    """Installs of three user ids the sample's Segment identifies know."""
    return [{"install_id": f"inst-{i}", "user_id": user_id, "device_id": f"dev-{i}",
             "installed_at": f"2026-05-1{i}T08:00:00", "platform": "ios"}
            for i, user_id in enumerate(known_user_ids(sample, 3))]


def create_installs(con: duckdb.DuckDBPyConnection, installs: list[dict[str, str]]) -> None:
    """app_data.installs, the table app_installs.yml reads in place."""
    con.execute("create schema if not exists app_data")
    con.execute("create table app_data.installs (install_id varchar, user_id varchar, "
                "device_id varchar, installed_at timestamp, platform varchar)")
    con.executemany("insert into app_data.installs values (?, ?, ?, ?, ?)",
                    [list(row.values()) for row in installs])


def create_segment_tables(con: duckdb.DuckDBPyConnection, sample: Path) -> None:
    """segment_prod.<table> from the sample's CSV, typed as Segment's warehouse destination types
    them: the time columns timestamptz, the rest text (phones keep their leading zeros)."""
    con.execute("create schema segment_prod")
    for table, name in SEGMENT_TABLES.items():
        path = sample / name
        header = path.read_text().splitlines()[0].replace('"', "").split(",")
        times = [c for c in header if c in SEGMENT_TIME_COLUMNS]
        select = ", ".join(
            f"cast({c} as timestamptz) as {c}" if c in times else c for c in header)
        # the sample's malformed times ('2025-13-45', which the loader rejects) cannot be in a
        # timestamptz column: those rows are not in the table
        valid = " and ".join(f"({c} is null or try_cast({c} as timestamptz) is not null)"
                             for c in times)
        con.execute(f"create table segment_prod.{table} as select {select} from "
                    f"read_csv('{path}', header = true, all_varchar = true) where {valid}")


@dataclass
class DeclaredRun:
    run: Run
    landing: Path                    # the run's landing folder: the sample's but segment_*
    known: list[dict[str, str]]      # leads of CRM contacts: lead row + the contact it belongs to
    strangers: list[dict[str, str]]  # leads of people the sample never saw
    installs: list[dict[str, str]]   # install rows + the segment user id they carry

    def touched_by(self, sources: tuple[str, ...]) -> set[str]:
        """Customers with a record of one of these sources."""
        names = ", ".join(f"'{source}'" for source in sources)
        return set(self.run.sql("select distinct customer_id from "
                                "main_marts.customer_source_records "
                                f"where source in ({names})")["customer_id"].astype(str))


def declared_run(root: Path, sample: Path) -> DeclaredRun:
    """The sample landing without its segment_* files, plus the lead-ads export; the warehouse
    holds the Segment tables and the installs before the run; the five declarations copied
    unchanged are its inputs."""
    landing = root / "landing"
    shutil.copytree(sample, landing, ignore=shutil.ignore_patterns("_ground_truth", "segment_*"))
    known, strangers = lead_rows(landing)
    write_csv(landing / "lead_ads.csv",
              [{k: v for k, v in row.items() if not k.startswith("_")}
               for row in known + strangers])
    installs = install_rows(sample)

    def create_tables(warehouse: Path) -> None:
        con = duckdb.connect(str(warehouse))
        try:
            create_segment_tables(con, sample)
            create_installs(con, installs)
        finally:
            con.close()

    run = cdp_run(root, landing, [*EXAMPLES, *sorted(PRESETS.glob("*.yml"))],
                  before=create_tables)
    return DeclaredRun(run=run, landing=landing, known=known, strangers=strangers,
                       installs=installs)
