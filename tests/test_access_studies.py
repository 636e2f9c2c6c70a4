"""An investigator's sites belong to a study, on the command line: the sample database holds CD56-CART-01 (one site,
"01") and ITNK-B-01 (sites 01, 02, 03), and SITEID is unique only within a study, so site 01 of one is another
centre than site 01 of the other. (The app's sidebar and pages: test_app_roles.py; the account file: test_auth.py,
test_auth_cli.py.)"""
from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from safety.access.auth import UserStore
from safety.access.reader import connect

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse battery staple"
ITNK, CD56 = "ITNK-B-01", "CD56-CART-01"


@pytest.fixture(scope="module")
def db(tmp_path_factory, sample_database) -> Path:
    folder = tmp_path_factory.mktemp("two_studies")
    path = folder / "study.duckdb"
    sample_database(path)
    users = UserStore(folder / "users.yaml", rounds=4)
    users.add("inga", "investigator", PASSWORD, study=ITNK, sites="01")
    users.add("ines", "investigator", PASSWORD, sites={ITNK: ["02"], CD56: ["01"]})
    users.add("cora", "committee", PASSWORD)
    # an account of an earlier account file: its sites name no study
    data = yaml.safe_load(users.path.read_text())
    data["users"]["olga"] = dict(data["users"]["inga"], sites=["01"])
    users.path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def cut(db) -> dict[str, str]:
    con = connect(db)
    try:
        return {s: c.isoformat() for s, c in con.execute("SELECT studyid, max(data_cut) FROM studies GROUP BY 1").fetchall()}
    finally:
        con.close()


def _safety(*args, password: str = PASSWORD):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("CELLTOX_USERS", None)
    env.pop("CELLTOX_USER", None)
    return subprocess.run([sys.executable, "-m", "safety", *args, "--password-stdin"], cwd=ROOT, env=env,
                          input=password + "\n", capture_output=True, text=True, timeout=300)


def _listed(db, cut, study: str, user: str) -> list[str]:
    """The subjects of ``review list --as user`` (one per DLT candidate row)."""
    r = _safety("review", "list", "--db", str(db), "--study", study, "--cut", cut[study], "--as", user)
    assert r.returncode == 0, r.stderr
    return [row["usubjid"] for row in csv.DictReader(io.StringIO(r.stdout))]


def test_review_list_as_an_investigator_shows_their_sites_of_their_study_only(db, cut):
    """inga, the investigator of ITNK-B-01's site 01, was listed CD56-CART-01's DLT candidates with their subject
    ids, terms and grades (11 rows): her site 01 was applied to every study."""
    assert _listed(db, cut, CD56, "inga") == []  # as empty as an administrator's scope
    everyone = _listed(db, cut, CD56, "cora")
    assert len(everyone) >= 5 and all(u.startswith(f"{CD56}-01-") for u in everyone)
    # site 01 of CD56-CART-01 given by name: the same rows as the committee's, the other study's site 02 only there
    assert _listed(db, cut, CD56, "ines") == everyone
    itnk = _listed(db, cut, ITNK, "cora")
    assert {u.split("-")[3] for u in itnk} > {"02"}  # candidates of other sites too, so the scope below shows
    assert _listed(db, cut, ITNK, "ines") == [u for u in itnk if u.startswith(f"{ITNK}-02-")] != []


def test_export_as_an_investigator_is_refused_whatever_the_study(db, cut, tmp_path):
    """`export --user` reads through the same scope_for; an investigator may not export at all."""
    for study in (CD56, ITNK):
        r = _safety("export", "--db", str(db), "--study", study, "--format", "csv", "--only", "ae",
                    "--out", str(tmp_path / study), "--user", "inga")
        assert r.returncode == 2 and "the site investigator role may not export" in r.stderr, r.stderr
        assert not (tmp_path / study).exists()


def test_an_account_whose_sites_name_no_study_may_not_act(db, cut, tmp_path):
    """olga's sites ["01"] (an account file of an earlier celltox) were site 01 of every study. Which study was
    meant is not guessed: every command acting as her is refused in one line naming the fix, before any password."""
    users = db.parent / "users.yaml"
    says = (f"--as olga: account 'olga' lists sites 01 without their study (an account file of an earlier "
            f"celltox), so it may not sign in or act until an administrator names the study: "
            f"python -m safety users set-sites olga --study STUDY --sites 01 --users {users}")
    for study in (CD56, ITNK):
        r = _safety("review", "list", "--db", str(db), "--study", study, "--cut", cut[study], "--as", "olga")
        assert (r.returncode, r.stdout, r.stderr.strip()) == (2, "", f"python -m safety review: error: {says}")
    r = _safety("export", "--db", str(db), "--study", CD56, "--format", "csv", "--out", str(tmp_path / "o"),
                "--user", "olga")
    assert r.returncode == 2 and r.stderr.strip().endswith(says.replace("--as olga", "--user olga")), r.stderr
    # the other accounts of the file still act
    assert _listed(db, cut, CD56, "cora")
