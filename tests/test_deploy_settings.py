"""The production configuration, checked the way an operator would: `manage.py` in a fresh process.

Each test starts from an empty environment (not the test run's, which relaxes HTTPS for the
test client), so what passes here is what a deployment with these variables gets.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def production_env(**overrides: str | None) -> dict[str, str]:
    """A production-like environment; an override of None removes that variable."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "DJANGO_SETTINGS_MODULE": "chatdesk.settings",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "chatdesk.example.com",
        "DATABASE_URL": os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/chatdesk"),
        "REDIS_URL": os.environ.get("REDIS_URL_FOR_TESTS", "redis://127.0.0.1:6379/0"),
        # Confirmations must really go out: the console default is for `make run` only.
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "smtp.example.com",
    }
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


def deploy_check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return manage("check", "--deploy", "--fail-level", "WARNING", env=env)


def test_production_settings_pass_the_deploy_check():
    result = deploy_check(production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_secret_key_can_come_from_a_file(tmp_path):
    # Docker and Kubernetes secrets arrive as files: SECRET_KEY_FILE names one.
    key_file = tmp_path / "secret_key"
    key_file.write_text(secrets.token_urlsafe(64) + "\n")
    result = deploy_check(production_env(SECRET_KEY=None, SECRET_KEY_FILE=str(key_file)))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_deploy_check_catches_a_weak_secret_key():
    # Proves the check above really inspects our settings rather than passing vacuously.
    result = deploy_check(production_env(SECRET_KEY="too-short"))
    assert result.returncode != 0
    assert "security.W009" in result.stderr


def test_plain_http_fails_the_deploy_check():
    result = deploy_check(production_env(SECURE_SSL_REDIRECT="0", SECURE_COOKIES="0"))
    assert result.returncode != 0
    for check in ("security.W008", "security.W012", "security.W016"):
        assert check in result.stderr


def test_a_deployment_that_forgot_email_fails_the_deploy_check():
    result = deploy_check(production_env(EMAIL_BACKEND=None, EMAIL_HOST=None))
    assert result.returncode != 0
    assert "mail.E001" in result.stderr


def test_startup_without_a_secret_key_fails_with_a_clear_message():
    result = manage("check", env=production_env(SECRET_KEY=None))
    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY must be set when DEBUG is off." in result.stderr


def test_a_bare_checkout_starts_in_debug_mode_with_nothing_else_set():
    # `make run`: DEBUG=1 and no SECRET_KEY, DATABASE_URL or REDIS_URL (SQLite, in-memory layers).
    env = production_env(DEBUG="1", SECRET_KEY=None, ALLOWED_HOSTS=None, DATABASE_URL=None, REDIS_URL=None)
    result = manage("check", env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_make_runs_setup_steps_work_on_the_embedded_sqlite_database(tmp_path):
    # What `make run` does before serving: migrate and seed the demo data, on SQLite.
    # (A PostgreSQL-only migration once broke exactly this while every PostgreSQL test passed.)
    env = production_env(
        DEBUG="1",
        SECRET_KEY=None,
        ALLOWED_HOSTS=None,
        REDIS_URL=None,
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
    )
    migrated = manage("migrate", "--no-input", env=env)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    seeded = manage("seed_demo", "--staff-user", "demo", "--staff-password", "chatdesk-demo", env=env)
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    assert "Demo data ready" in seeded.stdout
