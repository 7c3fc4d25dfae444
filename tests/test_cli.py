"""The organizer at the terminal: every command works, and every mistake gets one clear line."""

from __future__ import annotations

import csv
import logging
import re
import sys
import types
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from sqlmodel import Session, select

from bot.cli import main
from storage.db import make_engine
from storage.models import Person, Round, RoundPhase, TelegramAccount
from storage.settings import settings
from surveys.i18n import t

DATA = Path(__file__).parent / "data" / "roster"
ORGS, PEOPLE = str(DATA / "organizations.csv"), str(DATA / "people.csv")
SHANGHAI = ZoneInfo("Asia/Shanghai")
TOKEN = "123456:SECRET-token-never-printed"


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> pytest.MonkeyPatch:
    """The environment of an organizer's terminal, pointed at this test's database."""
    monkeypatch.chdir(tmp_path)  # no stray .env from the checkout
    for name in ("CEPING_BOT_TOKEN", "CEPING_LOCALE", "CEPING_TIMEZONE", "CEPING_BOT_API_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CEPING_DATABASE_URL", database_url)
    monkeypatch.setenv("CEPING_BOT_USERNAME", "ceping_test_bot")
    settings.cache_clear()
    yield monkeypatch
    settings.cache_clear()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], list[str]]:
    """Run ``ceping argv…``; returns the exit code and the stdout and stderr lines."""
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err.splitlines()


def local(days: int) -> str:
    """A local time that many days ahead, as typed on the command line."""
    return (datetime.now(SHANGHAI) + timedelta(days=days)).strftime("%Y-%m-%dT18:00")


def imported(capsys: pytest.CaptureFixture[str]) -> None:
    """The small test township imported."""
    code, _, err = run(capsys, "import", ORGS, PEOPLE)
    assert code == 0, err


def test_init_is_safe_to_run_twice(cli: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    first = run(capsys, "init")
    second = run(capsys, "init")

    assert first[0] == second[0] == 0
    assert second[1] == first[1] and "0008" in first[1][0]


def test_commands_refuse_a_database_that_was_not_initialised(
    cli: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    cli.setenv("CEPING_DATABASE_URL", f"sqlite:///{tmp_path / 'new.db'}")

    code, out, err = run(capsys, "round", "list")

    assert (code, out, err) == (1, [], [t("cli.not_at_head")])


def test_import_reports_changes_and_a_second_import_none(
    cli: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    code, out, _ = run(capsys, "import", ORGS, PEOPLE)
    again, out_again, _ = run(capsys, "import", ORGS, PEOPLE)

    assert code == again == 0
    assert t("cli.import.changes", count=13) in out  # 4 organizations and 9 people
    assert t("cli.import.changes", count=0) in out_again


def test_import_lists_every_problem_and_writes_nothing(
    cli: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    database_url: str,
):
    people = tmp_path / "people.csv"
    people.write_text(
        "姓名,手机,组织,角色\n张三,123,东村党支部,党员\n李四,13800000002,南村党支部,党员\n",
        encoding="utf-8",
    )

    code, out, err = run(capsys, "import", ORGS, str(people))

    assert code == 1 and out == []
    assert err == [
        "people.csv 第2行 手机“123”：不是有效的11位手机号",
        "people.csv 第3行 组织“南村党支部”：组织表中没有这个组织",
        t("cli.import.rejected", count=2),
    ]
    with Session(make_engine(database_url)) as session:
        assert session.exec(select(Person)).first() is None


def test_import_dry_run_writes_nothing(
    cli: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], database_url: str
):
    code, out, _ = run(capsys, "import", ORGS, PEOPLE, "--dry-run")

    assert code == 0 and out[-1] == t("cli.import.dry_run")
    with Session(make_engine(database_url)) as session:
        assert session.exec(select(Person)).first() is None


def test_import_of_a_missing_file(cli: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    code, _, err = run(capsys, "import", "nowhere.xlsx")

    assert (code, err) == (1, [t("roster.file.not_found", path="nowhere.xlsx")])


def test_round_create_stores_local_deadlines_in_utc_and_opens(
    cli: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], database_url: str
):
    imported(capsys)
    deadline = local(30)

    code, out, err = run(
        capsys,
        "round", "create", "2027年度",
        "--deadline", f"satisfaction={deadline}",
        "--deadline", f"self_evaluation={local(20)}",
        "--option", "targets.members=0.9",
        "--open",
    )  # fmt: skip

    assert code == 0, err
    # 6 satisfaction + 2 self-evaluations in the test township (see test_rounds).
    assert out[0] == t("cli.round.created", id=1, name="2027年度", assignments=8)
    assert out[-1] == t("cli.round.opened", id=1, name="2027年度")
    with Session(make_engine(database_url)) as session:
        stored = session.get(RoundPhase, (1, "satisfaction"))
        round_ = session.get(Round, 1)
    expected = datetime.fromisoformat(deadline).replace(tzinfo=SHANGHAI).astimezone(UTC)
    assert stored is not None and stored.deadline == expected
    assert stored.deadline.hour == 10  # 18:00 in Shanghai
    assert round_ is not None and round_.options == {"targets": {"members": "0.9"}}


FUTURE = "satisfaction=2030-01-01T00:00"
PAST = "satisfaction=2020-01-01T00:00"


@pytest.mark.parametrize(
    ("argv", "key", "params"),
    [
        (["--deadline", "harvest=2030-01-01T00:00"], "unknown_phase", {"phase": "harvest"}),
        (["--deadline", "satisfaction=next friday"], "bad_time", {"value": "next friday"}),
        (["--deadline", PAST], "deadline_past", {"phase": "satisfaction"}),
        (["--deadline", FUTURE, "--option", "colour=red"], "unknown_option", {"key": "colour"}),
        (["--deadline", FUTURE, "--option", "small_group_threshold=0"], "bad_option",
         {"key": "small_group_threshold", "value": "0"}),
    ],
)  # fmt: skip
def test_round_create_refuses_bad_input_in_one_line(
    cli: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    key: str,
    params: dict[str, str],
):
    code, out, err = run(capsys, "round", "create", "r", *argv)

    assert (code, out, err) == (1, [], [t(f"round.error.{key}", **params)])


def test_a_missing_argument_is_a_usage_error(
    cli: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    code, out, err = run(capsys, "round", "create", "r")

    assert code == 2 and out == [] and len(err) == 1
    assert err[0].startswith("命令用法有误") and "--deadline" in err[0]


def test_round_list_open_and_close(cli: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    imported(capsys)
    run(capsys, "round", "create", "第一轮", "--deadline", f"satisfaction={local(9)}")

    opened = run(capsys, "round", "open", "1")
    listed = run(capsys, "round", "list")
    again = run(capsys, "round", "open", "1")
    closed = run(capsys, "round", "close", "1")
    missing = run(capsys, "round", "close", "7")

    assert opened[:2] == (0, [t("cli.round.opened", id=1, name="第一轮")])
    assert listed[1][0] == t(
        "cli.round.list_line",
        id=1,
        name="第一轮",
        status=t("cli.round.status.open"),
        assignments=6,
        submitted=0,
    )
    assert again[0] == 1 and again[2] == [t("round.error.already_open", id=1)]
    assert closed[:2] == (0, [t("cli.round.closed", id=1, name="第一轮")])
    assert missing[0] == 1 and missing[2] == [t("round.error.not_found", id=7)]


def test_invite_writes_a_workbook_with_links_and_qr_codes(
    cli: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    imported(capsys)
    out_file = tmp_path / "邀请.xlsx"

    code, out, _ = run(capsys, "invite", "--out", str(out_file))

    assert code == 0 and out == [t("cli.invite.written", count=9, path=str(out_file))]
    sheet = openpyxl.load_workbook(out_file).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:5] == ("姓名", "手机", "组织", "角色", "链接")
    assert len(rows) == 10
    by_name = {row[0]: row for row in rows[1:]}
    assert by_name["张三"][1:4] == ("13800000001", "东村党支部", "党员、班子成员、书记")
    links = [row[4] for row in rows[1:]]
    assert all(
        re.fullmatch(r"https://t\.me/ceping_test_bot\?start=[A-Za-z0-9_-]{16,}", s) for s in links
    )
    assert len(set(links)) == 9
    assert len(sheet._images) == 9  # one QR code per person


def test_invite_again_replaces_the_unused_links(
    cli: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    imported(capsys)
    run(capsys, "invite", "--out", str(tmp_path / "a.csv"))
    run(capsys, "invite", "--out", str(tmp_path / "b.csv"))

    def links(name: str) -> list[str]:
        with (tmp_path / name).open(encoding="utf-8-sig") as handle:
            return [row[4] for row in csv.reader(handle)][1:]

    # Only a hash of each token is stored (issue 10, item 8): a second sheet carries new
    # links, and the first sheet's unused ones stop working.
    first, second = links("a.csv"), links("b.csv")
    assert len(first) == len(second) and not set(first) & set(second)


def test_invite_csv_for_one_branch_and_role_with_png_files(
    cli: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    imported(capsys)
    out_file = tmp_path / "members.csv"

    code, _, _ = run(
        capsys, "invite", "--branch", "东村党支部", "--role", "党员", "--out", str(out_file)
    )

    with out_file.open(encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle))
    assert code == 0
    assert [row[0] for row in rows[1:]] == ["张三", "李四", "王五"]  # 赵六 is a mass rep
    pictures = [tmp_path / "members_qr" / row[5] for row in rows[1:]]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in pictures)


@pytest.mark.parametrize(
    ("argv", "key", "params"),
    [
        (["--out", "x.txt"], "cli.invite.bad_out", {"path": "x.txt"}),
        (["--branch", "南村", "--out", "x.csv"], "cli.invite.unknown_branch", {"name": "南村"}),
        (["--role", "村长", "--out", "x.csv"], "cli.invite.unknown_role", {"role": "村长"}),
    ],
)
def test_invite_refuses_bad_input_in_one_line(
    cli: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    key: str,
    params: dict[str, str],
):
    imported(capsys)

    code, _, err = run(capsys, "invite", *argv)

    assert (code, err) == (1, [t(key, **params)])


def test_invite_without_bot_name_or_token(
    cli: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    imported(capsys)
    cli.delenv("CEPING_BOT_USERNAME")

    code, _, err = run(capsys, "invite", "--out", "x.csv")

    assert (code, err) == (1, [t("cli.invite.no_username")])


def test_the_token_never_appears_even_when_telegram_cannot_be_reached(
    cli: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    imported(capsys)
    cli.delenv("CEPING_BOT_USERNAME")
    cli.setenv("CEPING_BOT_TOKEN", TOKEN)
    cli.setenv("CEPING_BOT_API_URL", "http://127.0.0.1:9/bot")  # nothing listens there

    code, out, err = run(capsys, "invite", "--out", "x.csv")

    assert (code, err) == (1, [t("cli.invite.getme_failed")])
    assert "SECRET" not in "\n".join(out + err)


def test_broken_settings_give_one_line_and_exit_2(
    cli: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    cli.setenv("CEPING_TIMEZONE", "Mars/Olympus")

    code, out, err = run(capsys, "round", "list")

    assert code == 2 and out == [] and len(err) == 1
    assert err[0].startswith("配置有误：CEPING_TIMEZONE")


def test_english_output(cli: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    cli.setenv("CEPING_LOCALE", "en")

    code, out, _ = run(capsys, "round", "list")

    assert (code, out) == (0, ["No rounds yet"])


def test_surveys_check_and_show(
    cli: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    bundled = Path(__file__).parents[1] / "surveys" / "instruments" / "satisfaction.v1.yaml"
    broken = tmp_path / "satisfaction.v2.yaml"
    broken.write_text(
        bundled.read_text(encoding="utf-8")
        .replace("version: 1", "version: 2")
        .replace("kind: choice", "kind: multiple", 1),
        encoding="utf-8",
    )

    ok = run(capsys, "surveys", "check", str(bundled))
    bad = run(capsys, "surveys", "check", str(broken))
    shown = run(capsys, "surveys", "show", "satisfaction")
    unknown = run(capsys, "surveys", "show", "horoscope")

    assert ok[0] == 0 and "satisfaction@1" in ok[1][0]
    assert bad[0] == 1 and bad[2][-1].startswith("问卷文件有") and len(bad[2]) >= 2
    assert shown[0] == 0 and "satisfaction@1" in shown[1][0] and len(shown[1]) > 9
    assert unknown[:3] == (1, [], [t("cli.surveys.unknown", id="horoscope")])


def test_invite_branch_links_one_per_branch_with_its_seats(
    cli: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    imported(capsys)
    out_file = tmp_path / "links.csv"

    code, _, _ = run(capsys, "invite", "--branch-links", "--out", str(out_file))
    again, _, _ = run(capsys, "invite", "--branch-links", "--out", str(tmp_path / "again.csv"))

    def rows(path: Path) -> list[list[str]]:
        with path.open(encoding="utf-8-sig") as handle:
            return list(csv.reader(handle))[1:]

    assert code == again == 0
    # Villages count representatives (20, 15); the enterprise has no congress: all staff (50).
    assert [(row[2], row[3]) for row in rows(out_file)] == [
        ("东村党支部", t("cli.invite.seats", left=20, total=20)),
        ("西社区党支部", t("cli.invite.seats", left=15, total=15)),
        ("明星企业党支部", t("cli.invite.seats", left=50, total=50)),
    ]
    # A new sheet carries new links (only hashes are stored); all share the branch's seats.
    assert [row[3] for row in rows(out_file)] == [row[3] for row in rows(tmp_path / "again.csv")]


def fake_module(cli: pytest.MonkeyPatch, name: str, **functions: object) -> None:
    """Stand in for another area's module, so the wiring is tested, not their work."""
    module = types.ModuleType(name)
    for attribute, function in functions.items():
        setattr(module, attribute, function)
    cli.setitem(sys.modules, name, module)


def test_run_passes_the_settings_and_webhook_options_to_the_bot(
    cli: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    calls: list[dict[str, object]] = []

    def run_bot(settings: object, *, webhook_url: str | None = None, port: int = 8443) -> None:
        calls.append({"settings": settings, "webhook_url": webhook_url, "port": port})

    fake_module(
        cli, "bot.app", run=run_bot, WebhookUnavailable=type("Unavailable", (Exception,), {})
    )

    code, _, _ = run(capsys, "run", "--webhook-url", "https://example.org/hook", "--port", "8444")

    assert code == 0
    assert calls[0]["webhook_url"] == "https://example.org/hook" and calls[0]["port"] == 8444
    assert calls[0]["settings"].database_url.startswith(("sqlite", "postgresql"))  # type: ignore[attr-defined]


def test_jobs_and_remind_call_the_jobs_runner(
    cli: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    forced: list[bool] = []
    ran: list[object] = []

    def run_jobs(settings: object) -> None:
        ran.append(settings)

    def remind_now(settings: object, force: bool = False) -> int:
        forced.append(force)
        return 3

    fake_module(cli, "jobs.runner", run_jobs=run_jobs, remind_now=remind_now)

    jobs = run(capsys, "jobs")
    reminded = run(capsys, "remind", "--force")

    assert jobs[0] == 0 and len(ran) == 1
    assert reminded[:2] == (0, [t("cli.remind.done", count=3)]) and forced == [True]


def test_export_writes_the_open_rounds_workbook(
    cli: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    imported(capsys)
    run(capsys, "round", "create", "r", "--deadline", f"satisfaction={local(9)}", "--open")
    asked: list[tuple[int, Path, str]] = []

    def write_workbook(
        session: Session, *, round_id: int, path: Path, locale: str, zone: object, now: object
    ) -> Path:
        asked.append((round_id, path, locale))
        return path

    fake_module(cli, "bot.workbook", write_workbook=write_workbook)
    out_file = tmp_path / "r.xlsx"

    code, out, _ = run(capsys, "export", "--out", str(out_file))
    bad, _, err = run(capsys, "export", "--out", "r.pdf")

    assert (code, out) == (0, [t("cli.export.written", path=str(out_file))])
    assert asked == [(1, out_file, "zh_CN")]
    assert (bad, err) == (1, [t("cli.export.bad_out", path="r.pdf")])


def test_an_unreachable_database_is_one_line_not_a_traceback(
    cli: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    cli.setenv("CEPING_DATABASE_URL", "postgresql+psycopg://nobody:pw@127.0.0.1:9/none")

    code, out, err = run(capsys, "init")

    assert code == 1 and out == [] and len(err) == 1
    assert err[0].startswith("无法使用数据库")


def test_invite_skips_people_already_on_telegram_unless_asked(
    cli: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], database_url: str
):
    imported(capsys)
    with Session(make_engine(database_url)) as session:
        zhang = session.exec(select(Person).where(Person.phone == "13800000001")).one()
        session.add(
            TelegramAccount(
                person_id=zhang.id, telegram_user_id=1001, chat_id=1001, bound_via="invitation"
            )
        )
        session.commit()

    code, out, _ = run(capsys, "invite", "--out", "a.csv")
    everyone, out_all, _ = run(capsys, "invite", "--include-registered", "--out", "b.csv")

    assert code == everyone == 0
    assert out[0] == t("cli.invite.skipped_registered", count=1)
    assert out[1] == t("cli.invite.written", count=8, path="a.csv")
    assert out_all[0] == t("cli.invite.written", count=9, path="b.csv")


@pytest.mark.parametrize("command", [["jobs"], ["remind"]])
def test_jobs_and_remind_never_log_the_token(
    cli: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    command: list[str],
):
    # Issue 10, item 9: only `ceping run` installed the redactor.
    secret = f"654321:JOBS-{command[0]}-token-never-logged"
    cli.setenv("CEPING_BOT_TOKEN", secret)
    settings.cache_clear()
    log = logging.getLogger("httpx")

    def run_jobs(settings: object) -> None:
        log.warning("POST https://api.telegram.org/bot%s/sendMessage", secret)

    def remind_now(settings: object, force: bool = False) -> int:
        log.warning("POST https://api.telegram.org/bot%s/sendMessage", secret)
        return 0

    fake_module(cli, "jobs.runner", run_jobs=run_jobs, remind_now=remind_now)
    with caplog.at_level(logging.WARNING, logger="httpx"):
        code, _, _ = run(capsys, *command)

    assert code == 0
    messages = [record.getMessage() for record in caplog.records]
    assert messages and all(secret not in m and "token-never" not in m for m in messages)
