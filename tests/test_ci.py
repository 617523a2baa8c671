"""tests/ci.py: one helper decides whether this is CI; there a missing dependency fails, elsewhere it skips."""
import pytest

import ci


@pytest.mark.parametrize("value, expected", [("true", True), ("TRUE", True), (" yes ", True), ("1", True),
                                             ("Yes", True), ("", False), ("false", False), ("0", False),
                                             ("no", False), (None, False)])
def test_on_ci_reads_the_ci_variable(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert ci.on_ci() is expected


def test_a_missing_dependency_fails_on_ci_with_what_to_install(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no_such_module.*pip install -r requirements.txt"):
        ci.require_module("no_such_module")
    with pytest.raises(pytest.fail.Exception, match="initdb missing: apt-get install postgresql"):
        ci.require(False, "initdb missing", "apt-get install postgresql")


def test_a_missing_dependency_skips_elsewhere(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="initdb missing: apt-get install postgresql"):
        ci.require(False, "initdb missing", "apt-get install postgresql")
    assert ci.require_module("json").dumps([]) == "[]"


def test_a_skip_fails_a_ci_run_and_is_counted(tmp_path):
    """tests/conftest.py: the count goes to $RNN_SKIP_COUNT_FILE (.ci/run prints it); with CI=true a skip
    fails the run, without it the run passes."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "test_one_skip.py").write_text("import pytest\n\ndef test_skips():\n    pytest.skip('no x here')\n\n"
                                               "def test_passes():\n    pass\n")
    tests = str(Path(__file__).resolve().parent)
    results = {}
    for value in ("true", ""):
        count = tmp_path / f"count-{value or 'local'}"
        env = {**os.environ, "CI": value, "RNN_SKIP_COUNT_FILE": str(count),
               "PYTHONPATH": os.pathsep.join(filter(None, [tests, os.environ.get("PYTHONPATH")]))}
        run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "conftest", "-p", "no:cacheprovider",
                              "test_one_skip.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        results[value] = (run.returncode, count.read_text().strip(), run.stdout)
    assert results["true"][:2] == (1, "1"), results["true"]
    assert "skipped: 1 (CI=true: the run fails)" in results["true"][2]
    assert results[""][:2] == (0, "1"), results[""]
