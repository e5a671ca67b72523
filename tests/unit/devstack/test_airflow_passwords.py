"""The UI users' passwords: generated once, kept private, never replaced."""

from __future__ import annotations

import json
import stat

from devstack.airflow_parts import USERS, passwords, passwords_file


def test_each_user_gets_a_generated_password_kept_readable_by_its_owner_only(tmp_path):
    known = passwords(tmp_path)
    assert set(known) == set(USERS)
    assert len(set(known.values())) == len(USERS)
    assert all(len(password) >= 20 and password not in USERS for password in known.values())
    assert stat.S_IMODE(passwords_file(tmp_path).stat().st_mode) == 0o600
    assert passwords(tmp_path) == known  # the next `up` keeps them


def test_a_missing_user_is_added_without_changing_the_others_and_the_mode_is_restored(tmp_path):
    path = passwords_file(tmp_path)
    path.write_text(json.dumps({"admin": "chosen-by-the-operator"}))
    path.chmod(0o644)
    known = passwords(tmp_path)
    assert known["admin"] == "chosen-by-the-operator" and known["viewer"]
    assert json.loads(path.read_text()) == known
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
