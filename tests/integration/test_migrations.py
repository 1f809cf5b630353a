"""The migration runner against the stack's real PostgreSQL: order, transactions, lock, CLI."""
import os
import subprocess
import tempfile
import threading

from conftest import BIN_DIR

UP_1 = "CREATE TABLE it_alpha (id int PRIMARY KEY);\nINSERT INTO it_alpha VALUES (1);\n"
DOWN_1 = "DROP TABLE it_alpha;\n"
UP_2 = "SELECT pg_sleep(1);\nCREATE TABLE it_beta (id int);\n"
DOWN_2 = "DROP TABLE it_beta;\n"
BAD_3 = "CREATE TABLE it_gamma (id int);\nTHIS IS NOT SQL;\n"


def write(d, name, text):
    with open(os.path.join(d, name), "w") as f:
        f.write(text)


def moleculed(stack, d, *args):
    env = dict(os.environ)
    env.update({"DATABASE_URL": stack.stack_env()["DATABASE_URL"], "MOLECULE_MIGRATIONS_DIR": d,
                "ASAN_OPTIONS": "detect_leaks=0"})
    return subprocess.run([os.path.join(BIN_DIR, "moleculed"), "migrate"] + list(args),
                          env=env, capture_output=True, text=True, timeout=60)


def psql(stack, sql):
    url = stack.stack_env()["DATABASE_URL"]
    return subprocess.run(["psql", url, "-Atc", sql], capture_output=True, text=True, timeout=30).stdout.strip()


def test_stack_applied_the_repo_migrations(stack):
    files = sorted(f for f in os.listdir(os.path.join(os.path.dirname(BIN_DIR), "sql")) if f.endswith(".up.sql")) \
        if os.path.isdir(os.path.join(os.path.dirname(BIN_DIR), "sql")) else []
    count = psql(stack, "SELECT count(*) FROM schema_migrations")
    assert count == str(len(files))


def test_up_status_down_in_order_and_once(stack):
    d = tempfile.mkdtemp(prefix="molecule-mig-")
    write(d, "901_alpha.up.sql", UP_1)
    write(d, "901_alpha.down.sql", DOWN_1)
    write(d, "902_beta.up.sql", UP_2)
    write(d, "902_beta.down.sql", DOWN_2)
    write(d, "README.txt", "not a migration")
    # Two hosts migrating at once: the advisory lock makes one wait, nothing runs twice.
    results = []
    threads = [threading.Thread(target=lambda: results.append(moleculed(stack, d, "up"))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    assert sorted(r.stdout.strip() for r in results) == ["0 applied", "2 applied"]
    st = moleculed(stack, d, "status")
    assert st.returncode == 0
    assert "901 901_alpha" in st.stdout and st.stdout.count("applied") == 2
    assert psql(stack, "SELECT count(*) FROM it_alpha") == "1"
    down = moleculed(stack, d, "down", "1")
    assert down.returncode == 0 and down.stdout.strip() == "1 rolled back"
    assert psql(stack, "SELECT to_regclass('it_beta') IS NULL") == "t"
    assert "902 902_beta" in moleculed(stack, d, "status").stdout.split("pending")[0]
    assert moleculed(stack, d, "down", "5").stdout.strip() == "1 rolled back"
    assert psql(stack, "SELECT to_regclass('it_alpha') IS NULL") == "t"


def test_failed_migration_rolls_back_whole_file(stack):
    d = tempfile.mkdtemp(prefix="molecule-mig-")
    write(d, "910_ok.up.sql", "CREATE TABLE it_ok (id int);\n")
    write(d, "910_ok.down.sql", "DROP TABLE it_ok;\n")
    write(d, "911_bad.up.sql", BAD_3)
    write(d, "911_bad.down.sql", "DROP TABLE it_gamma;\n")
    r = moleculed(stack, d, "up")
    assert r.returncode != 0
    assert "911_bad.up.sql" in r.stderr and "syntax error" in r.stderr
    assert psql(stack, "SELECT to_regclass('it_ok') IS NOT NULL") == "t"
    assert psql(stack, "SELECT to_regclass('it_gamma') IS NULL") == "t"
    assert psql(stack, "SELECT count(*) FROM schema_migrations WHERE version = 911") == "0"
    moleculed(stack, d, "down", "1")


def test_bad_arguments_are_refused(stack):
    d = tempfile.mkdtemp(prefix="molecule-mig-")
    write(d, "951_a.up.sql", "SELECT 1;")
    write(d, "951_b.up.sql", "SELECT 1;")
    r = moleculed(stack, d, "status")
    assert r.returncode != 0 and "used twice" in r.stderr
    r = moleculed(stack, d, "down", "zero")
    assert r.returncode != 0
