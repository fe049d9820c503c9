"""Segments declared in YAML (segments/*.yml): validation and compilation into a dbt model.

A segment names an audience and a condition over the columns of the dbt model
`int_customers_segment_inputs` (profile, features, predictions, RFM scores) and over the
customer's events in the mart `customer_events` (event rules: counts, sums, recency in a window
before the run's as-of time). The column catalogues and their types are read from the models'
YAML, so a new column becomes usable in segments as soon as it is documented there. Errors name
the file, the segment and the field.

    python -m orchestration.segments check     # validate every file
    python -m orchestration.segments compile   # (re)write the generated dbt model

The compiled model (`COMPILED_MODEL`, under models/marts/segments/evaluation/) is checked in; a
test fails when it is out of date with the YAML. Every run compiles it before dbt builds
(`compile_for_run`), and loading the Dagster definitions validates the YAML and warns.

Modules: grammar (pydantic models of the condition tree), validation (checks against the
catalogues, loading the files), sql (what each condition compiles to, the generated models),
build (writing them, the run's compile step, the CLI).
"""

from orchestration.segments.build import (compile_for_run, compile_segments, declaration_problem,
                                          main)
from orchestration.segments.grammar import (COMPARISONS, OPERATORS, All, Any_, ColumnKind,
                                            Condition, EventRule, LoadedSegment, Not, Rule, Segment,
                                            SegmentError, parse_condition, parse_window)
from orchestration.segments.sql import (COMPILED_MODEL, DEFINITIONS_MODEL, compile_condition,
                                        compile_event, render_definitions_model,
                                        render_members_model)
from orchestration.segments.validation import (CONSENT_PURPOSES_SEED, EVENTS_MODEL, INPUTS_MODEL,
                                               INPUTS_YAML, SEGMENTS_DIR, column_catalogue,
                                               consent_purposes, event_catalogue, load_segments)
from orchestration.settings import PROJECT_DIR

__all__ = [
    "COMPARISONS", "COMPILED_MODEL", "CONSENT_PURPOSES_SEED", "DEFINITIONS_MODEL", "EVENTS_MODEL",
    "INPUTS_MODEL", "INPUTS_YAML", "OPERATORS", "PROJECT_DIR", "SEGMENTS_DIR", "All", "Any_",
    "ColumnKind", "Condition", "EventRule", "LoadedSegment", "Not", "Rule", "Segment",
    "SegmentError", "column_catalogue", "compile_condition", "compile_event", "compile_for_run",
    "compile_segments", "consent_purposes", "declaration_problem", "event_catalogue",
    "load_segments", "main", "parse_condition", "parse_window", "render_definitions_model",
    "render_members_model",
]
