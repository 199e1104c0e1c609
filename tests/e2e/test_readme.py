"""The README's psql walkthrough, run as written against a fresh demo database.

Every ```sql block of the section "A walk through psql" (up to the next "## "
heading) runs in one psql session, in order, on a preloaded cluster set up by
scripts/demo-setup.sql exactly as `make demo` sets up its database. A statement
that the README says fails carries a comment `-- ERROR <SQLSTATE> ...`; the
session must raise exactly those errors, in that order, and no other.
"""

import os
import re
import subprocess
import tempfile

import psycopg
import pytest

from conftest import MIGRATIONS, PORT, ROOT

README_PORT = PORT + 40
CLUSTER = str(ROOT / "scripts/cluster.sh")
SECTION = "## A walk through psql"


def walkthrough():
    text = (ROOT / "README.md").read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start:end if end != -1 else len(text)]
    return re.findall(r"^```sql\n(.*?)^```", section, re.S | re.M)


def expected_errors(script):
    return re.findall(r"--\s*ERROR\s+([0-9A-Z]{5})\b", script)


def psql(dbname, script, env_options="", **kwargs):
    args = ["psql", "-X", "-h", "127.0.0.1", "-p", str(README_PORT), "-U", "postgres", "-d", dbname,
            "-v", f"migrations={MIGRATIONS}", "-v", "VERBOSITY=verbose"] + kwargs.get("extra", [])
    env = dict(os.environ, PGOPTIONS=env_options)
    return subprocess.run(args, input=script, capture_output=True, text=True, timeout=600, env=env,
                          cwd=kwargs.get("cwd"))


@pytest.fixture(scope="module")
def demo_database():
    subprocess.run([CLUSTER, "start", "readme", str(README_PORT), "shared_preload_libraries=pg_migrate"], check=True)
    try:
        with psycopg.connect(f"host=127.0.0.1 port={README_PORT} user=postgres dbname=postgres", autocommit=True) as c:
            c.execute("CREATE DATABASE app")
        setup = (ROOT / "scripts/demo-setup.sql").read_text()
        result = psql("app", setup, extra=["-v", "ON_ERROR_STOP=1"])
        assert result.returncode == 0, f"demo setup failed:\n{result.stdout}\n{result.stderr}"
        yield "app"
    finally:
        subprocess.run([CLUSTER, "stop", "readme"], check=False)


def test_walkthrough_has_blocks_and_announced_errors():
    blocks = walkthrough()
    assert len(blocks) >= 5
    assert len(expected_errors("".join(blocks))) >= 3


def test_readme_walkthrough_runs_as_written(demo_database):
    script = "".join(walkthrough())
    # ON_ERROR_STOP matters in a script, not to a DBA typing: psql stops a script
    # at the first error, but an interactive session goes on. Every error is
    # counted below, so an unexpected one still fails the test.
    runnable = re.sub(r"^\\set ON_ERROR_STOP on\s*$", "", script, flags=re.M)
    # Files the walkthrough saves (\o :file_name) land in psql's directory.
    with tempfile.TemporaryDirectory() as folder:
        result = psql(demo_database, runnable, cwd=folder)
        saved = {name: open(os.path.join(folder, name)).read() for name in os.listdir(folder)}
    actual = re.findall(r"^(?:psql:[^\n]*?: )?ERROR:  ([0-9A-Z]{5}): ", result.stderr, re.M)
    expected = expected_errors(script)
    assert actual == expected, (
        f"the walkthrough raised {actual}, the README announces {expected}\n"
        f"--- stderr ---\n{result.stderr}\n--- stdout (tail) ---\n{result.stdout[-4000:]}"
    )
    assert "FATAL" not in result.stderr and "server closed the connection" not in result.stderr
    # Each file saved from psql is exactly the text that was loaded.
    assert saved, "the walkthrough saves the files it writes"
    with psycopg.connect(f"host=127.0.0.1 port={README_PORT} user=postgres dbname={demo_database}") as conn:
        for name, text in saved.items():
            stored = conn.execute("SELECT source FROM migrate.revisions WHERE source_file = %s", (name,)).fetchone()
            assert stored is not None and stored[0] == text, name
