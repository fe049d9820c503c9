"""Great Expectations suites as Dagster asset checks on the key tables.

GX 1.x has no DuckDB datasource, so each check reads a pandas dataframe from the target warehouse
through the warehouse interface (DuckDB, PostgreSQL or Spark, CDP_DBT_TARGET; a sample where the
table is large: metadata `sampled` and `rows_validated` say so) and validates it with an ephemeral
GX context. Blocking checks (over-merge guard, profile count) stop every
downstream asset of their table in the run, activation syncs included; the sync assets also refuse
to run on their own while the latest evaluation of a blocking upstream check failed
(orchestration/activation/assets.py). Thresholds: env vars below, docs/data-quality.md.
"""

import os
import sys
from collections.abc import Callable
from typing import Any

import datetime as dt

import dagster as dg
import duckdb
import pandas as pd

from orchestration.catalog import catalog
from orchestration.warehouse import WAREHOUSE_POOL, Warehouse, WarehouseError, WarehouseResource


def _great_expectations() -> Any:
    """Import Great Expectations, safely inside a Dagster run worker.

    GX imports pyspark's Spark Connect support when pyspark is installed (it is, for dbt-spark),
    and pyspark calls sys.exit(0) on import when `__main__` has neither a spec nor a file ("we
    must be running doctests"), which is what a run worker started by multiprocessing's spawn
    looks like. The run then dies in the middle of a step. A temporary `__file__` on `__main__`
    for the first import avoids that; nothing else reads it meanwhile."""
    main = sys.modules.get("__main__")
    patched = (main is not None and getattr(main, "__spec__", None) is None
               and not hasattr(main, "__file__"))
    if patched:
        main.__file__ = "<dagster run worker>"
    try:
        import great_expectations
    finally:
        if patched:
            del main.__file__
    return great_expectations

CUSTOMERS = dg.AssetKey(["customers"])
SOURCE_RECORDS = dg.AssetKey(["customer_source_records"])
PREDICTIONS = dg.AssetKey(["predictions", "customer_predictions"])
HISTORY = "quality.check_history"
# E.164 (ITU-T): phones are parsed by libphonenumber in Python (orchestration/phones.py), not dbt.
PHONE_PATTERN = r"^\+[1-9][0-9]{6,14}$"


def email_pattern() -> str:
    """The address pattern dbt's normalize_email accepts (var `email_pattern`): one rule."""
    return str(catalog().var("email_pattern"))


def setting(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value not in (None, "") else default


def max_identifiers_per_profile() -> int:
    return int(setting("CDP_QUALITY_MAX_IDENTIFIERS", 50))


def sample_rows() -> int:
    return int(setting("CDP_QUALITY_SAMPLE_ROWS", 200_000))


class MissingRelation(LookupError):
    """A relation a check reads does not exist in the target (yet)."""


def require(wh: Warehouse, *relations: str) -> None:
    """Raise MissingRelation naming the first relation the target does not hold."""
    for relation in relations:
        if not wh.exists(relation):
            raise MissingRelation(f"{relation} does not exist in the {wh.engine} target")


def read_frame(wh: Warehouse, relation: str, columns: str = "*", where: str = "true",
               key: str = "customer_id") -> tuple[pd.DataFrame, dict[str, Any]]:
    """The relation as a dataframe; when larger than CDP_QUALITY_SAMPLE_ROWS, a deterministic
    sample of that many rows: those with the smallest md5 of `key` (the same rows on every
    engine and every run for the same data; md5 is one of the functions all three share)."""
    require(wh, relation)
    total = int(wh.scalar(f"select count(*) from {relation} where {where}") or 0)
    limit = sample_rows()
    sampled = total > limit
    sql = f"select {columns} from {relation} where {where}"
    if sampled:
        sql += (f" order by md5(cast({key} as {wh.sql_type('string')})), {key}"
                f" limit {int(limit)}")
    frame = wh.query(sql)
    return frame, {"table_rows": total, "rows_validated": len(frame), "sampled": sampled}


def validate(frame: pd.DataFrame, expectations: list[Any]) -> list[Any]:
    """Run GX expectations on a dataframe with an ephemeral context; the validation results."""
    gx = _great_expectations()

    context = gx.get_context(mode="ephemeral")
    batch = (context.data_sources.add_pandas("cdp")
             .add_dataframe_asset(name="frame")
             .add_batch_definition_whole_dataframe("all")
             .get_batch(batch_parameters={"dataframe": frame}))
    return [batch.validate(expectation) for expectation in expectations]


def _summary(results: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for result in results:
        config = result.expectation_config
        name = f"{config.type}:{config.kwargs.get('column', 'table')}"
        observed = {k: v for k, v in result.result.items()
                    if k in ("observed_value", "unexpected_percent", "element_count",
                             "unexpected_count", "missing_count")}
        out[name] = {"success": bool(result.success),
                     **{k: (float(v) if hasattr(v, "__float__") else v)
                        for k, v in observed.items()}}
    return out


def check_result(results: list[Any], extra: dict[str, Any], description: str,
                 severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
                 figure: str | None = None) -> dg.AssetCheckResult:
    """The check's verdict; `figure` is the one line `cdp run` prints for it (what was measured
    against which limit, e.g. "pos_transactions 50.3 % unmatched > 50 %")."""
    passed = all(r.success for r in results)
    figures = {"figure": dg.MetadataValue.text(figure)} if figure else {}
    return dg.AssetCheckResult(
        passed=passed,
        severity=severity,
        description=description if passed else f"FAILED: {description}",
        metadata={**{k: v for k, v in extra.items()}, **figures,
                  "expectations": dg.MetadataValue.json(_summary(results))},
    )


def percent(share: float) -> str:
    return f"{100 * share:.1f} %"


def valid_share(result: Any) -> float | None:
    """Share of present values that met a `mostly` expectation (GX reports the unexpected %)."""
    unexpected = result.result.get("unexpected_percent")
    return None if unexpected is None else 1 - float(unexpected) / 100


# --------------------------------------------------------------------------------------------
# Check bodies (plain functions of a warehouse session, so tests can call them directly)


def over_merge_guard(wh: Warehouse) -> dg.AssetCheckResult:
    """No profile holds more identifiers than CDP_QUALITY_MAX_IDENTIFIERS (exact, not sampled)."""
    gx = _great_expectations()

    cap = max_identifiers_per_profile()
    customers = catalog().relation("customers")
    require(wh, customers)
    frame = wh.query(
        f"select customer_id, identifier_count from {customers} "
        "order by identifier_count desc limit 1000")
    results = validate(frame, [gx.expectations.ExpectColumnMaxToBeBetween(
        column="identifier_count", max_value=cap)])
    # Figures only: metadata lives in Dagster's event log, which an erasure cannot reach, so it
    # never names a customer (docs/security.md); the query below finds them in the warehouse.
    counts = [int(n) for n in frame["identifier_count"]]
    largest = max(counts, default=0)
    return check_result(
        results,
        {"max_identifiers_allowed": cap, "sampled": False,
         "largest_identifier_counts": dg.MetadataValue.json(counts[:5]),
         "profiles_over_limit": dg.MetadataValue.int(sum(n > cap for n in counts)),
         "find_them": dg.MetadataValue.md(
             f"`select customer_id, identifier_count from {customers} "
             "order by identifier_count desc limit 5`")},
        f"no profile above {cap} identifiers (over-merge guard; the largest 1000 profiles are "
        "validated, which is exact for a maximum)",
        figure=f"largest profile holds {largest} identifiers "
               f"{'≤' if largest <= cap else '>'} {cap}")


def profile_count_vs_previous(wh: Warehouse) -> dg.AssetCheckResult:
    """Profiles within ±CDP_QUALITY_PROFILE_COUNT_CHANGE (default 30 %) of the previous run."""
    gx = _great_expectations()

    change = setting("CDP_QUALITY_PROFILE_COUNT_CHANGE", 0.30)
    customers = catalog().relation("customers")
    require(wh, customers)
    previous = None
    if wh.exists(HISTORY):
        previous = wh.rows(f"select observed from {HISTORY} where check_name = 'profile_count' "
                           "order by recorded_at desc limit 1")
        previous = previous[0] if previous else None
    count = int(wh.scalar(f"select count(*) from {customers}") or 0)
    frame = pd.DataFrame({"customer_id": range(count)})
    if previous is None:
        bounds = (1, None)
    else:
        bounds = (int(previous[0] * (1 - change)), int(previous[0] * (1 + change)) + 1)
    results = validate(frame, [gx.expectations.ExpectTableRowCountToBeBetween(
        min_value=bounds[0], max_value=bounds[1])])
    if results[0].success:  # the baseline moves only with accepted runs
        wh.append(HISTORY, pd.DataFrame({
            "check_name": ["profile_count"], "observed": [float(count)],
            "recorded_at": [dt.datetime.now(dt.UTC).replace(tzinfo=None)]}))
    return check_result(
        results,
        {"profiles": int(count), "previous_profiles": None if previous is None else
         int(previous[0]), "allowed_change": change, "sampled": False},
        f"profile count within {change:.0%} of the previous accepted run",
        figure=f"{count:,} profiles (first run)" if previous is None else
        f"{count:,} profiles vs {int(previous[0]):,} in the previous accepted run "
        f"(allowed ±{change:.0%})")


def contact_validity(wh: Warehouse) -> dg.AssetCheckResult:
    """At least CDP_QUALITY_MIN_EMAIL_VALID / _PHONE_VALID of present emails/phones are valid."""
    gx = _great_expectations()

    email_rate = setting("CDP_QUALITY_MIN_EMAIL_VALID", 0.98)
    phone_rate = setting("CDP_QUALITY_MIN_PHONE_VALID", 0.95)
    frame, meta = read_frame(wh, catalog().relation("customers"), "primary_email, primary_phone")
    results = validate(frame, [
        gx.expectations.ExpectColumnValuesToMatchRegex(
            column="primary_email", regex=email_pattern(), mostly=email_rate),
        gx.expectations.ExpectColumnValuesToMatchRegex(
            column="primary_phone", regex=PHONE_PATTERN, mostly=phone_rate),
    ])
    shares = [valid_share(r) for r in results]
    figure = ", ".join(
        f"{label} {'n/a' if share is None else percent(share)} valid (min {percent(minimum)})"
        for label, share, minimum in (("emails", shares[0], email_rate),
                                      ("phones", shares[1], phone_rate)))
    return check_result(results, meta, f"≥{email_rate:.0%} of emails and ≥{phone_rate:.0%} of "
                        "phones valid (E.164)", dg.AssetCheckSeverity.WARN, figure=figure)


def unmatched_share(wh: Warehouse) -> dg.AssetCheckResult:
    """Per identity source, the share of staged records not attached to any profile."""
    gx = _great_expectations()

    limit = setting("CDP_QUALITY_MAX_UNMATCHED_SHARE", 0.5)
    cat = catalog()
    records = cat.relation("customer_source_records")
    require(wh, records)
    rows = []
    # Sources with `links: false` (consents, privacy requests) attach to profiles by lookup and
    # are expected to hold identifiers no profile has: only linking sources are measured.
    for source in cat.var("identity.sources"):
        staging = cat.relation(source["model"])
        if source.get("links") is False or not wh.exists(staging):
            continue
        staged = int(wh.scalar(f"select count(*) from {staging}") or 0)
        matched = int(wh.scalar(f"select count(*) from {records} where source = %(source)s",
                                {"source": source["source"]}) or 0)
        rows.append({"source": source["source"],
                     "unmatched_share": 0.0 if staged == 0 else 1 - matched / staged})
    frame = pd.DataFrame(rows)
    results = validate(frame, [gx.expectations.ExpectColumnValuesToBeBetween(
        column="unmatched_share", min_value=0, max_value=limit)])
    over = [r for r in rows if r["unmatched_share"] > limit]
    worst = max(rows, key=lambda r: r["unmatched_share"], default=None)
    figure = "; ".join(f"{r['source']} {percent(r['unmatched_share'])} unmatched > "
                       f"{percent(limit)}" for r in over) if over else (
        "no identity source staged" if worst is None else
        f"highest: {worst['source']} {percent(worst['unmatched_share'])} unmatched "
        f"≤ {percent(limit)}")
    return check_result(results, {"unmatched_share": dg.MetadataValue.json(
        {r["source"]: round(r["unmatched_share"], 4) for r in rows}), "sampled": False},
        f"no source has more than {limit:.0%} of its records unmatched",
        dg.AssetCheckSeverity.WARN, figure=figure)


def hours_behind_newest(loads: pd.DataFrame) -> pd.DataFrame:
    """Per source, hours between its latest load and the newest load of any source (computed
    here, not in SQL: date arithmetic is what the engines spell differently)."""
    latest = pd.to_datetime(loads["loaded_at"])
    behind = (latest.max() - latest).dt.total_seconds() / 3600
    return pd.DataFrame({"source": loads["source"], "hours_behind": behind.astype(float)})


def source_freshness(wh: Warehouse) -> dg.AssetCheckResult:
    """Every source loaded within CDP_QUALITY_MAX_LOAD_AGE_HOURS (default 48) of the newest."""
    gx = _great_expectations()

    hours = setting("CDP_QUALITY_MAX_LOAD_AGE_HOURS", 48)
    load_log = catalog().raw_relation("_load_log")
    require(wh, load_log)
    frame = hours_behind_newest(wh.query(
        f"select source, max(_loaded_at) as loaded_at from {load_log} "
        "group by source order by source"))
    results = validate(frame, [gx.expectations.ExpectColumnValuesToBeBetween(
        column="hours_behind", min_value=0, max_value=hours)])
    late = [r for r in frame.itertuples() if r.hours_behind > hours]
    figure = "; ".join(f"{r.source} {r.hours_behind:.1f} h behind the newest load > {hours:g} h"
                       for r in late) or f"every source within {hours:g} h of the newest load"
    return check_result(results, {"hours_behind_newest_load": dg.MetadataValue.json(
        {r.source: float(r.hours_behind) for r in frame.itertuples()}), "sampled": False},
        f"every source delivered within {hours:g} h of the newest delivery",
        dg.AssetCheckSeverity.WARN, figure=figure)


def clv_distribution(wh: Warehouse) -> dg.AssetCheckResult:
    """Predicted 365-day CLV: not negative, mostly present, median within a sane band."""
    gx = _great_expectations()

    median_max = setting("CDP_QUALITY_MAX_MEDIAN_CLV", 10_000)
    frame, meta = read_frame(wh, catalog().source("predictions", "customer_predictions"),
                             "predicted_clv_365d")
    results = validate(frame, [
        gx.expectations.ExpectColumnValuesToBeBetween(column="predicted_clv_365d", min_value=0),
        gx.expectations.ExpectColumnValuesToNotBeNull(column="predicted_clv_365d", mostly=0.9),
        gx.expectations.ExpectColumnMedianToBeBetween(column="predicted_clv_365d", min_value=0,
                                                      max_value=median_max),
    ])
    clv = frame["predicted_clv_365d"]
    figure = (f"median 365-day CLV {clv.median():,.2f} (max {median_max:g}), "
              f"{percent(clv.isna().mean()) if len(clv) else 'n/a'} missing (max 10.0 %), "
              f"{int((clv < 0).sum())} negative") if len(clv) else "no predictions"
    return check_result(results, meta, "predicted CLV non-negative, ≥90% present, median "
                        f"≤ {median_max:g}", dg.AssetCheckSeverity.WARN, figure=figure)


# --------------------------------------------------------------------------------------------
# Dagster asset checks


def _asset_check(asset: dg.AssetKey, name: str, body: Callable[[Warehouse], dg.AssetCheckResult],
                 blocking: bool, description: str,
                 read_only: bool = True) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=asset, name=name, blocking=blocking, pool=WAREHOUSE_POOL,
                    description=description)
    def _check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        try:
            with warehouse.open(read_only=read_only) as wh:
                return body(wh)
        except (MissingRelation, WarehouseError, duckdb.CatalogException,
                duckdb.IOException) as error:
            return dg.AssetCheckResult(passed=False, description=f"cannot evaluate: {error}",
                                       severity=dg.AssetCheckSeverity.ERROR if blocking
                                       else dg.AssetCheckSeverity.WARN)

    return _check


QUALITY_CHECKS = [
    _asset_check(CUSTOMERS, "gx_over_merge_guard", over_merge_guard, True,
                 "BLOCKING. No profile holds more than CDP_QUALITY_MAX_IDENTIFIERS identifiers: "
                 "a hub identifier that merged many people stops every sync."),
    _asset_check(CUSTOMERS, "gx_profile_count_vs_previous_run", profile_count_vs_previous, True,
                 "BLOCKING. Profile count within CDP_QUALITY_PROFILE_COUNT_CHANGE of the last "
                 "accepted run (records the count).", read_only=False),
    _asset_check(CUSTOMERS, "gx_contact_validity", contact_validity, False,
                 "Share of valid emails and E.164 phones among profiles (sampled when large)."),
    _asset_check(SOURCE_RECORDS, "gx_unmatched_share", unmatched_share, False,
                 "Share of each source's staged records attached to no profile."),
    _asset_check(SOURCE_RECORDS, "gx_source_freshness", source_freshness, False,
                 "Each source's latest load is recent relative to the newest load."),
    _asset_check(PREDICTIONS, "gx_clv_distribution", clv_distribution, False,
                 "Distribution of predicted 365-day CLV (sampled when large)."),
]
