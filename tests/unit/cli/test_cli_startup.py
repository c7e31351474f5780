"""The ``wfe`` command starts without importing Airflow, and ``airflow`` starts without building wfe.

Each test runs a real interpreter (a fresh process, as a user's shell starts one), so what is
imported is what a user pays for.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_wfe.core.states import StepState
from airflow_wfe.testing import temporary_store

pytestmark = pytest.mark.slow

PYTHON = sys.executable


def _clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW__WFE__", "AIRFLOW__METRICS__")) and key != "AIRFLOW_CONFIG"
    }
    env["AIRFLOW_HOME"] = str(home)
    env.update(extra)
    return env


def _python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-c", code], capture_output=True, text=True, env=env, timeout=180, check=False
    )


@pytest.fixture
def store_url(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "store").mkdir()
    with temporary_store(tmp_path / "store") as ctx:
        ctx.recorder.run_started("etl", "[bold]run-1[/]", actor="scheduler", reason="started")
        ctx.recorder.step(
            "etl",
            "[bold]run-1[/]",
            "a",
            StepState.RUNNING,
            actor="worker",
            reason="go",
            try_number=1,
        )
        yield ctx.settings.store_conn


SETTINGS_AND_MODULES = """
import json, sys
from dataclasses import asdict
{prelude}
from airflow_wfe.config import get_settings, airflow_option
s = asdict(get_settings())
out = {{k: str(v) for k, v in s.items()}}
out["metrics_port"] = airflow_option("metrics", "statsd_port", "8125")
out["airflow_imported"] = "airflow" in sys.modules
print(json.dumps(out))
"""


def _settings(env: dict[str, str], *, through_airflow: bool) -> dict[str, object]:
    prelude = (
        "from airflow.sdk import conf; conf.get('core', 'dags_folder')" if through_airflow else ""
    )
    done = _python(SETTINGS_AND_MODULES.format(prelude=prelude), env)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_settings_read_without_airflow_equal_airflows_reading(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "airflow.cfg").write_text(
        "[wfe]\n"
        "store_conn = sqlite:///$WFE_T_DIR/from-file.db\n"
        "policy_path = ~/policies\n"
        "govern = all\n"
        "audit_redact = iban, ssn\n"
        "dora_window = 7d\n"
        "[metrics]\n"
        "statsd_port = 9125\n"
    )
    env = _clean_env(
        home,
        WFE_T_DIR=str(tmp_path / "data"),
        AIRFLOW__WFE__FAIL_CLOSED="True",  # the environment wins over the file, as in Airflow
        AIRFLOW__WFE__GOVERN="tagged",
    )
    fast = _settings(env, through_airflow=False)
    slow = _settings(env, through_airflow=True)
    assert fast.pop("airflow_imported") is False
    assert slow.pop("airflow_imported") is True
    assert fast == slow
    assert fast["store_conn"] == f"sqlite:///{tmp_path / 'data'}/from-file.db"
    assert fast["policy_path"] == str(Path.home() / "policies")
    assert (fast["govern"], fast["fail_closed"], fast["metrics_port"]) == ("tagged", "True", "9125")


def test_a_cmd_option_is_left_to_airflow(tmp_path: Path) -> None:
    # Only Airflow runs _cmd options (and only for sensitive ones): the reader steps aside.
    home = tmp_path / "home"
    home.mkdir()
    target = f"sqlite:///{tmp_path}/from-command.db"
    env = _clean_env(home, AIRFLOW__WFE__STORE_CONN_CMD=f"echo {target}")
    assert _settings(env, through_airflow=False)["store_conn"] == target
    (home / "airflow.cfg").write_text(f"[wfe]\nstore_conn_cmd = echo {target}-file\n")
    env = _clean_env(home)
    assert _settings(env, through_airflow=False)["store_conn"] == f"{target}-file"


def test_runs_list_never_imports_airflow(store_url: str, tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from airflow_wfe.cli.main import main\n"
        "code = main(['runs', 'list', '-o', 'json'])\n"
        "sys.stdout.flush()\n"
        "loaded = sorted(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.'))\n"
        "others = [m for m in ('airflow_wfe.cli.audit', 'airflow_wfe.cli.artifacts') "
        "if m in sys.modules]\n"
        "print('LOADED', loaded, others, code, file=sys.stderr)\n"
    )
    done = _python(code, _clean_env(tmp_path / "home", AIRFLOW__WFE__STORE_CONN=store_url))
    assert done.returncode == 0, done.stderr
    assert [r["run_id"] for r in json.loads(done.stdout)] == ["[bold]run-1[/]"]
    assert "LOADED [] [] 0" in done.stderr


def test_airflow_builds_its_cli_without_building_wfes(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "import airflow.cli.cli_config\n"
        "from airflow_wfe.cli.airflow_commands import get_cli_commands\n"
        "(command,) = get_cli_commands()\n"
        "print(command.name, sorted(m for m in sys.modules if m.startswith('airflow_wfe.')))\n"
        "print(command.epilog)\n"
    )
    done = _python(code, _clean_env(tmp_path / "home"))
    assert done.returncode == 0, done.stderr
    # The declaration and its static index; no command module, store or response model (what
    # Airflow loads itself, provider info and the cluster policy, aside).
    name, loaded = done.stdout.splitlines()[0].split(" ", 1)
    assert name == "wfe"
    assert "airflow_wfe.cli.commands" in loaded
    for heavy in (
        "airflow_wfe.cli.main",
        "airflow_wfe.app",
        "airflow_wfe.store",
        "airflow_wfe.cli.text",
    ):
        assert f"'{heavy}" not in loaded, heavy
    assert "  runs         governed runs and their state histories" in done.stdout


def _subcommands(parser: Any) -> Any:
    """The ``COMMAND`` action of a parser (argparse keeps it private)."""
    return parser._subparsers._group_actions[0]


def test_the_command_index_is_what_the_commands_add() -> None:
    from airflow_wfe.cli.commands import COMMANDS
    from airflow_wfe.cli.main import build_parser

    added = [(c.dest, c.help) for c in _subcommands(build_parser())._choices_actions]
    assert added == [(c.name, c.help) for c in COMMANDS]
    for command in COMMANDS:
        # Built alone, each command's module adds it (what `wfe <command>` builds).
        assert command.name in _subcommands(build_parser(command.name)).choices


def _wfe(url: str, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = _clean_env(home, AIRFLOW__WFE__STORE_CONN=url)
    return subprocess.run(
        [str(Path(PYTHON).parent / "wfe"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )


def test_output_formats_of_runs_list_and_show(store_url: str, tmp_path: Path) -> None:
    import yaml

    home = tmp_path / "home"
    as_json = json.loads(_wfe(store_url, home, "runs", "list", "--json").stdout)
    assert json.loads(_wfe(store_url, home, "runs", "list", "-o", "json").stdout) == as_json
    assert yaml.safe_load(_wfe(store_url, home, "runs", "list", "-o", "yaml").stdout) == as_json

    table = _wfe(store_url, home, "runs", "list").stdout.splitlines()
    # Airflow's table: ASCII double-line header rule, cells split by " | ", markup shown as text.
    assert [cell.strip() for cell in table[0].split("|")] == [
        "dag_id",
        "run_id",
        "state",
        "run_type",
        "updated_at",
    ]
    assert set(table[1]) <= {"=", "+"}
    assert "[bold]run-1[/]" in table[2]

    plain = _wfe(store_url, home, "runs", "list", "-o", "plain").stdout.splitlines()
    assert plain[0].split() == ["dag_id", "run_id", "state", "run_type", "updated_at"]
    assert plain[1].split()[:4] == ["etl", "[bold]run-1[/]", "RUNNING", "-"]

    shown = _wfe(store_url, home, "runs", "show", "etl", "[bold]run-1[/]", "-o", "yaml")
    assert shown.returncode == 0, shown.stderr
    detail = yaml.safe_load(shown.stdout)
    assert detail == json.loads(
        _wfe(store_url, home, "runs", "show", "etl", "[bold]run-1[/]", "--json").stdout
    )
    assert detail["steps"][0]["state"] == "RUNNING"

    empty = _wfe(store_url, home, "runs", "list", "--dag-id", "nothing")
    assert empty.stdout.strip() == "No governed runs recorded yet."
    bad = _wfe(store_url, home, "runs", "list", "-o", "xml")
    assert bad.returncode == 2
    assert "invalid choice: 'xml'" in bad.stderr


def test_every_command_help_has_examples(tmp_path: Path) -> None:
    from airflow_wfe.cli.output import add_command

    assert callable(add_command)
    home = tmp_path / "home"
    top = _wfe("sqlite://", home, "--help")
    assert "exit codes:" in top.stdout
    assert "141" in top.stdout
    for words in (
        ("runs", "list"),
        ("runs", "show"),
        ("compensate",),
        ("validate",),
        ("render",),
        ("run",),
        ("dora",),
        ("report",),
        ("spool", "status"),
        ("spool", "flush"),
        ("db", "upgrade"),
        ("db", "check"),
        ("demo",),
        ("doctor",),
    ):
        helped = _wfe("sqlite://", home, *words, "--help")
        assert helped.returncode == 0, helped.stderr
        assert "examples:\n  wfe " + words[0] in helped.stdout, words
