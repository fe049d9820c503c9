"""tools/test_shards.py: every module runs in exactly one shard, Spark's all in the first."""

from __future__ import annotations

import re
from pathlib import Path

from tools.test_shards import TESTS, selects_tests, shards, suite_exit_code

# a module reaches the Spark Thrift server through this fixture or an engine parameter
SPARK = re.compile(r"spark_thrift_server|\"spark\"")


def test_every_module_is_in_one_shard_and_spark_modules_in_the_first() -> None:
    in_place, copied = shards()
    modules = sorted(f"tests/{p.name}" for p in TESTS.glob("test_*.py"))
    assert sorted(in_place + copied) == modules
    assert not set(in_place) & set(copied)
    spark = {m for m in modules if m != f"tests/{Path(__file__).name}"
             and SPARK.search((TESTS.parent / m).read_text())}
    assert "tests/test_engines_pipeline.py" in spark
    assert spark - set(in_place) == set(), "a Spark module in the copy would start a second server"


def test_paths_or_a_keyword_run_one_pytest_in_place(monkeypatch) -> None:
    monkeypatch.chdir(TESTS.parent)
    assert selects_tests(["tests/test_identity.py"])
    assert selects_tests(["tests/test_identity.py::test_x", "-q"])
    assert selects_tests(["-k", "junk"])
    assert not selects_tests(["--durations=60", "-v"])
    assert not selects_tests([])


def test_a_failed_or_killed_shard_fails_the_suite() -> None:
    assert suite_exit_code([0, 0]) == 0
    assert suite_exit_code([0, 1]) == 1
    assert suite_exit_code([2, 0]) == 2
    assert suite_exit_code([0, -9]) == 1  # SIGKILL: max() of the codes would have said 0
