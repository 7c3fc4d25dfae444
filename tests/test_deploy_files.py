"""The production files under deploy/ parse, and name only settings that exist.

Each file is read the way its tool reads it (as far as a test can without the tool): the
systemd unit with configparser, compose.yaml with YAML, the Caddyfile by its braces, the
env example line by line. A CEPING_* variable that no settings class reads would be
silently ignored in production, so every one they set is checked against the settings.
"""

from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path

import yaml

from bot.screen.settings import ScreenSettings
from storage.settings import Settings

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
PREFIX = "CEPING_"
VARIABLE = re.compile(r"\b(CEPING_[A-Z_]+)\b")


def known_settings() -> set[str]:
    """Every CEPING_* variable the bot reads."""
    fields = [*Settings.model_fields, *ScreenSettings.model_fields]
    return {PREFIX + name.upper() for name in fields}


def test_the_systemd_unit_runs_workers_on_postgres_settings() -> None:
    unit = configparser.ConfigParser(strict=True, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are cased
    unit.read_string((DEPLOY / "ceping.service").read_text(encoding="utf-8"))
    assert set(unit.sections()) == {"Unit", "Service", "Install"}
    service = unit["Service"]
    command = shlex.split(service["ExecStart"])
    assert command[0].endswith("/ceping") and command[1] == "run"
    options = dict(zip(command[2::2], command[3::2], strict=True))
    assert options["--webhook-url"].startswith("${CEPING_PUBLIC_URL}/")
    assert int(options["--workers"]) > 1 and int(options["--port"]) > 0
    assert service["EnvironmentFile"].startswith("/etc/")
    assert service["KillSignal"] == "SIGTERM" and service["Restart"] == "on-failure"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    used = set(VARIABLE.findall((DEPLOY / "ceping.service").read_text(encoding="utf-8")))
    assert used <= known_settings(), used - known_settings()


def test_the_compose_file_has_postgres_workers_and_a_tls_proxy() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert set(services) == {"postgres", "ceping", "caddy"}
    bot = services["ceping"]
    environment = bot["environment"]
    assert environment["CEPING_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert {"CEPING_BOT_TOKEN", "CEPING_PUBLIC_URL"} <= set(environment)
    set_here = {key for key in environment if key.startswith(PREFIX)}
    assert set_here <= known_settings(), set_here - known_settings()
    command = " ".join(bot["command"])
    assert "--workers" in command and "--webhook-url" in command and "ceping init" in command
    assert bot["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "8443" in bot["expose"]
    assert {"80:80", "443:443"} <= set(services["caddy"]["ports"])
    assert any("Caddyfile" in volume for volume in services["caddy"]["volumes"])
    assert (DEPLOY / bot["build"]["dockerfile"].removeprefix("deploy/")).is_file()


def test_the_caddyfile_proxies_the_public_url_to_the_bot_port() -> None:
    text = (DEPLOY / "Caddyfile").read_text(encoding="utf-8")
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    depth = 0
    for line in lines:
        depth += line.count("{") - line.count("}")
        assert depth >= 0, f"unbalanced braces at {line!r}"
    assert depth == 0
    assert lines[0] == "{$CEPING_PUBLIC_URL} {"
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    port = compose["services"]["ceping"]["expose"][0]
    assert f"reverse_proxy ceping:{port} {{" in lines
    assert "flush_interval -1" in lines  # the screen's server-sent events pass at once


def test_the_env_example_names_only_known_settings() -> None:
    pairs = [
        line.split("=", 1)
        for line in (DEPLOY / "ceping.env.example").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert all(len(pair) == 2 and pair[0].isupper() for pair in pairs), pairs
    named = {key for key, _ in pairs if key.startswith(PREFIX)}
    assert named <= known_settings(), named - known_settings()
    assert {"CEPING_BOT_TOKEN", "CEPING_DATABASE_URL", "CEPING_PUBLIC_URL"} <= named


def test_the_dockerfile_installs_ceping_with_postgres() -> None:
    lines = (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines()
    instructions = [line.split()[0] for line in lines if line and line[0] not in "# "]
    assert instructions[0] == "FROM" and "CMD" in instructions
    assert any("'.[postgres]'" in line for line in lines)
