"""What the rdmt commands load before they need it: `rdmt --help`, `rdmt sql`, `rdmt topics list` and the
start of a service import no photutils, matplotlib, roman_datamodels or quixstreams."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

HEAVY = ("photutils", "matplotlib", "roman_datamodels", "quixstreams")


def _loaded_after(commands: str) -> list[str]:
    """The HEAVY modules in ``sys.modules`` after running ``commands`` in a fresh interpreter."""
    code = textwrap.dedent(commands) + textwrap.dedent(f"""
        import json, sys
        print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _invoke(*args: str) -> str:
    return f"""
        from click.testing import CliRunner
        from rdmt_core.cli import main
        result = CliRunner().invoke(main, {list(args)!r}, catch_exceptions=False)
        assert result.exit_code == 0, result.output
    """


def test_help_loads_nothing_heavy():
    assert _loaded_after(_invoke("--help")) == []


def test_service_help_lists_the_five_installed_services():
    from click.testing import CliRunner

    from rdmt_core.cli import main

    result = CliRunner().invoke(main, ["service", "--help"], catch_exceptions=False)
    assert result.exit_code == 0
    for name in ("ingest", "monitor", "evaluator", "sink", "notifier"):
        assert f"  {name} " in result.output, result.output
    unknown = CliRunner().invoke(main, ["service", "nosuch"])
    assert unknown.exit_code == 2 and "unknown service 'nosuch'" in unknown.output


def test_sql_and_topics_load_nothing_heavy(tmp_path):
    from rdmt_core.store import open_store

    open_store(f"chdb://{tmp_path}/s").close()  # sql reads an existing store (it refuses a missing one)
    assert _loaded_after(_invoke("sql", "SELECT count() FROM files", "--store", f"chdb://{tmp_path}/s")) == []
    assert _loaded_after(_invoke("topics", "list")) == []


def test_a_service_starts_without_what_it_does_not_need():
    """Building a service's process (its wiring, the config, the Kafka kit) loads only what the service uses."""
    for module in ("ingest", "monitor", "sink"):
        assert _loaded_after(f"import rdmt_services.{module}.service") == [], module
    # the stateful services are quixstreams applications; they need nothing else heavy
    assert _loaded_after("import rdmt_services.evaluator.service") == ["quixstreams"]
