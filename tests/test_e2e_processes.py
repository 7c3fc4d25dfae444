"""The whole township story with every part in its own process, as in production.

The fake Bot API runs as ``python -m tests.fakebot``; the organizer's commands (`ceping init`,
`import`, `round create`, `invite`, `run`, `remind`) run as the real console script in a
working directory of their own, configured only by environment variables. The test plays
the phones over the fake server's HTTP control endpoints (``/_fake/*``), which hold each
request until the bot has shown what the user is waiting for, so nothing here sleeps.
"""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from openpyxl import load_workbook
from sqlmodel import Session, select

from storage.db import make_engine
from storage.models import (
    Assignment,
    Organization,
    Person,
    Response,
    SatisfactionBallots,
    TelegramAccount,
)
from surveys.i18n import t

REPO = Path(__file__).resolve().parent.parent
ROSTER = REPO / "examples" / "roster.xlsx"
TOKEN = "987654:E2E-secret-Token-7Qx2mZ"
USERNAME = "ceping_e2e_bot"
WAIT = 30.0
"""Seconds the fake server holds a wait before giving up (generous for a slow CI)."""
STARTUP = 60.0

# Telegram user ids of the people from examples/roster.xlsx who take part.
MEMBER_BY_LINK = 3001  # 李志强, 党员 of 董浜村党总支
MEMBER_BY_PHONE = 3002  # 吴丽娟, 党员 of 杜桥村党总支, phone 13912340007
COMMITTEE = 3003  # 王秀英, 班子成员 of 董浜村党总支
INSPECTOR = 3004  # 林德明, 工作组 under the township committee: every branch
ORGANIZER = 3005  # 郑宏伟, 组织员
REGISTERED = {
    MEMBER_BY_LINK: "李志强",
    MEMBER_BY_PHONE: "吴丽娟",
    COMMITTEE: "王秀英",
    INSPECTOR: "林德明",
    ORGANIZER: "郑宏伟",
}


# --- Processes ------------------------------------------------------------------------------


@dataclass
class FakeServer:
    """The fake Bot API in its own process, and an HTTP client for its control endpoints."""

    process: subprocess.Popen[str]
    base_url: str
    file_url: str
    client: httpx.Client

    @property
    def root(self) -> str:
        return self.base_url.removesuffix("/bot")

    def control(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call a /_fake endpoint; its result, or a failed assertion with the description."""
        response = self.client.request(method, f"{self.root}/_fake/{path}", **kwargs)
        body = response.json()
        assert body.get("ok"), f"/_fake/{path}: {response.status_code} {body.get('description')}"
        return body["result"]

    def log_size(self) -> int:
        """How many requests the bot has made so far."""
        return int(self.control("GET", "stats")["log_size"])

    def requests(self, method: str | None = None, since: int = 0) -> list[dict[str, Any]]:
        """Logged Bot API calls (of one method) from position since."""
        params: dict[str, Any] = {"since": since}
        if method:
            params["method"] = method
        return list(self.control("GET", "requests", params=params))

    def wait_for(self, method: str, count: int, timeout: float = WAIT) -> None:
        """Hold until the bot has made count calls of method in total."""
        params = {"method": method, "count": count, "timeout": timeout}
        self.control("GET", "wait", params=params, timeout=timeout + 10)

    def download(self, file_id: str) -> bytes:
        """A file the bot uploaded, fetched the way a Telegram client would (getFile)."""
        found = self.client.post(f"{self.base_url}{TOKEN}/getFile", json={"file_id": file_id})
        path = found.json()["result"]["file_path"]
        return self.client.get(f"{self.file_url}{TOKEN}/{path}").content


@pytest.fixture
def fake_server() -> Iterator[FakeServer]:
    """python -m tests.fakebot on a free port, stopped with SIGINT afterwards."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakebot", "--port", "0", "--token", TOKEN],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url, file_url, token = (process.stdout.readline().strip() for _ in range(3))
        assert token == TOKEN, "the fake server did not start"
        with httpx.Client(timeout=WAIT + 10) as client:
            yield FakeServer(process, base_url, file_url, client)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)


def ceping_env(database_url: str, server: FakeServer | None = None) -> dict[str, str]:
    """The environment of a ceping command: ours without CEPING_*, plus the settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CEPING_")}
    env.update(
        CEPING_DATABASE_URL=database_url,
        CEPING_BOT_USERNAME=USERNAME,
        CEPING_TIMEZONE="Asia/Shanghai",
        CEPING_LOCALE="zh_CN",
        PYTHONPATH=str(REPO),
    )
    if server is not None:
        env.update(
            CEPING_BOT_TOKEN=TOKEN,
            CEPING_BOT_API_URL=server.base_url,
            CEPING_BOT_FILE_URL=server.file_url,
        )
    return env


def ceping_command(*args: str) -> list[str]:
    """The console script's entry point, run by this interpreter."""
    return [sys.executable, "-c", "from bot.cli import main; raise SystemExit(main())", *args]


def ceping(workdir: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run one ceping command to its end; it must succeed."""
    done = subprocess.run(
        ceping_command(*args), cwd=workdir, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"ceping {' '.join(args)}: {done.stdout}\n{done.stderr}"
    return done


@dataclass
class RunningBot:
    """`ceping run` in its own process, its output captured in files."""

    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    def output(self) -> str:
        """Everything the process printed so far."""
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")

    def stop(self) -> int:
        """Ctrl-C, as an organizer stops it; the exit code (killed after 30 s: -9)."""
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return -signal.SIGKILL


def start_bot(workdir: Path, env: dict[str, str], server: FakeServer) -> RunningBot:
    """Start `ceping run` and wait until it polls for updates."""
    out, err = workdir / "run.out", workdir / "run.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            ceping_command("run"), cwd=workdir, env=env, stdout=stdout, stderr=stderr
        )
    bot = RunningBot(process, out, err)
    try:
        server.wait_for("getUpdates", 1, timeout=STARTUP)
    except AssertionError:
        bot.process.kill()
        bot.process.wait()
        raise AssertionError(f"ceping run never polled; it printed:\n{bot.output()}") from None
    return bot


# --- Phones over HTTP ------------------------------------------------------------------------


@dataclass
class Reply:
    """The bot's visible calls about one update: messages sent or edited, the tap's answer."""

    records: list[dict[str, Any]]

    @property
    def shown(self) -> list[dict[str, Any]]:
        return [
            r["result"]
            for r in self.records
            if r["status"] == 200 and isinstance(r["result"], dict) and "message_id" in r["result"]
        ]

    @property
    def text(self) -> str:
        return "\n".join(str(m.get("text", m.get("caption", ""))) for m in self.shown)

    @property
    def documents(self) -> list[dict[str, Any]]:
        return [m["document"] for m in self.shown if "document" in m]

    @property
    def photos(self) -> list[dict[str, Any]]:
        return [m for m in self.shown if "photo" in m]

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["status"] != 200]


class RemotePhone:
    """A Telegram user whose taps and messages reach the bot only through the fake server."""

    def __init__(self, server: FakeServer, user_id: int, name: str) -> None:
        self.server = server
        self.user_id = user_id
        self.name = name

    def _identity(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "first_name": self.name}

    def _reply(self, update_id: int, **expect: Any) -> Reply:
        """Hold until the bot showed what expect names (at least one message by default)."""
        params = {"update_id": update_id, "timeout": WAIT, **expect}
        result = self.server.control("GET", "reply", params=params, timeout=WAIT + 10)
        reply = Reply(result["records"])
        assert not reply.failed, f"the Bot API refused calls: {reply.failed}"
        return reply

    def send(self, text: str, **expect: Any) -> Reply:
        """Type a message (or a command)."""
        update_id = self.server.control("POST", "message", json={**self._identity(), "text": text})
        return self._reply(update_id, **expect)

    def tap(self, button: str, **expect: Any) -> Reply:
        """Tap the inline button with this text on the newest bot message showing it."""
        update_id = self.server.control("POST", "tap", json={**self._identity(), "text": button})
        return self._reply(update_id, **expect)

    def share_contact(self, phone_number: str, **expect: Any) -> Reply:
        """Share one's own phone number (digits with the country code, as Telegram sends)."""
        body = {**self._identity(), "phone_number": phone_number}
        return self._reply(self.server.control("POST", "contact", json=body), **expect)

    @property
    def buttons(self) -> list[str]:
        """Inline buttons on the newest bot message."""
        chat = self.server.control("GET", f"chat/{self.user_id}")
        bot_messages = [m for m in chat if m["from"]["is_bot"]]
        markup = (bot_messages[-1].get("reply_markup") or {}) if bot_messages else {}
        return [b["text"] for row in markup.get("inline_keyboard", []) for b in row]

    def button_with(self, part: str) -> str:
        """The one button on the newest message whose text contains part."""
        (button,) = [b for b in self.buttons if part in b]
        return button


def points_on(buttons: list[str]) -> list[Decimal]:
    """The numbers among the buttons (a points question offers its maximum and a few below)."""
    numbers = []
    for text in buttons:
        try:
            numbers.append(Decimal(text))
        except InvalidOperation:
            continue
    return numbers


# --- The story -------------------------------------------------------------------------------


def local_deadline(days: int) -> str:
    """A deadline days from now, as the organizer types it (local time)."""
    moment = datetime.now(ZoneInfo("Asia/Shanghai")) + timedelta(days=days)
    return moment.strftime("%Y-%m-%dT%H:%M")


def prepare_round(workdir: Path, env: dict[str, str]) -> dict[str, str]:
    """init, import, open a round, write invitations; the deep-link token of each person."""
    ceping(workdir, env, "init")
    imported = ceping(workdir, env, "import", str(ROSTER))
    for kind, created in (("organizations", 7), ("people", 18)):  # the two sheets' rows
        kind_name = t(f"cli.import.kind.{kind}")
        line = t("cli.import.kind", kind=kind_name, created=created, updated=0, unchanged=0)
        assert line in imported.stdout
    # Every deadline more than three days away: no scheduled reminder interrupts the story.
    ceping(
        workdir,
        env,
        *("round", "create", "2026年度分类定级", "--open"),
        *("--deadline", f"self_evaluation={local_deadline(4)}"),
        *("--deadline", f"satisfaction={local_deadline(5)}"),
        *("--deadline", f"inspection={local_deadline(6)}"),
        *("--deadline", f"superior_scoring={local_deadline(7)}"),
    )
    ceping(workdir, env, "invite", "--out", "invitations.csv")
    with (workdir / "invitations.csv").open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    prefix = f"https://t.me/{USERNAME}?start="
    links = {row[t("cli.invite.column.name")]: row[t("cli.invite.column.link")] for row in rows}
    assert all(link.startswith(prefix) for link in links.values()), links
    return {name: link.removeprefix(prefix) for name, link in links.items()}


def register_by_link(phone: RemotePhone, token: str, roster_phone: str | None = None) -> Reply:
    """/start <token>: the confirmation, then the to-do list.

    组织员, 工作组 and 书记 (``roster_phone`` given) are asked for their contact after the
    link, and share it (surveys.privileges).
    """
    if roster_phone is not None:
        phone.send(f"/start {token}")
        reply = phone.share_contact(roster_phone, shown=2)
        assert phone.name in reply.text
        return reply
    reply = phone.send(f"/start {token}", shown=2)
    assert phone.name in reply.text
    return reply


def answer_satisfaction(phone: RemotePhone) -> Reply:
    """The member opens the satisfaction survey, taps an answer to each question, submits."""
    phone.send("/surveys")
    first = phone.tap(phone.button_with("满意度"), contains="第 1/9 题")
    assert "不记名" in first.text  # told it is anonymous before the first answer
    choices = ("满意", "基本满意", "不满意", "满意", "满意", "较好", "部分了解", "偶尔参加")
    for number, choice in enumerate(choices, start=2):
        phone.tap(choice, contains=f"第 {number}/9 题")
    review = phone.tap("跳过 ➡️", contains="请核对您的回答")  # q9, the suggestion, is optional
    assert "3. 工作机制好：不满意" in review.text
    phone.tap("📨 提交", contains="确认")
    return phone.tap("✅ 确认提交", contains="提交成功")


def answer_self_evaluation(phone: RemotePhone) -> Decimal:
    """The committee member scores each line one below its maximum by tapping; the total."""
    phone.send("/surveys")
    phone.tap(phone.button_with("自评表"), contains="第 1/")
    total = Decimal(0)
    while "📨 提交" not in phone.buttons:
        offered = points_on(phone.buttons)
        assert offered == sorted(offered, reverse=True) and offered[-1] == 0, offered
        chosen = offered[1]  # the maximum is first; one below it is second
        phone.tap(f"{chosen.normalize():f}")
        total += chosen
    phone.tap("📨 提交", contains="确认")
    thanks = phone.tap("✅ 确认提交", contains="总分")
    assert f"总分 {total.normalize():f} 分" in thanks.text
    return total


def inspect_branch(phone: RemotePhone, branch: str) -> None:
    """The inspector picks a branch from the list and finds nothing to deduct anywhere."""
    phone.tap(phone.button_with(branch), contains="当前得分 100/100")
    lines = 0
    while "📨 提交" not in phone.buttons:
        phone.tap("✅ 不扣分")
        lines += 1
    assert lines > 10, "an inspection sheet has dozens of lines"
    phone.tap("📨 提交", contains="确认")
    thanks = phone.tap("✅ 确认提交", contains="总分")
    assert "总分 100 分" in thanks.text


def table_rows(text: str) -> dict[str, list[str]]:
    """The tally table's rows by short branch name: the cells after the name."""
    rows = {}
    for line in text.splitlines():
        cells = line.split()
        if len(cells) >= 4 and (cells[0].isdigit() or cells[0] == "—"):
            rows[cells[1]] = cells[2:]
    return rows


def sheet_row(sheet: Any, name: str) -> dict[str, Any]:
    """The row of a workbook sheet whose first cell is name, by column title."""
    titles, *rows = sheet.iter_rows(values_only=True)
    (row,) = [row for row in rows if row[0] == name]
    return dict(zip(titles, row, strict=True))


def person_id(session: Session, name: str) -> int:
    """The id of the roster person with this name."""
    person = session.exec(select(Person).where(Person.name == name)).one()
    assert person.id is not None
    return person.id


def test_the_township_grades_through_separate_processes_as_in_production(
    fake_server: FakeServer, database_url: str, tmp_path: Path
) -> None:
    workdir = tmp_path / "organizer"
    workdir.mkdir()
    offline = ceping_env(database_url)
    tokens = prepare_round(workdir, offline)
    online = ceping_env(database_url, fake_server)
    bot = start_bot(workdir, online, fake_server)
    try:
        # A member registers through the personal link from the invitation sheet.
        li = RemotePhone(fake_server, MEMBER_BY_LINK, "李志强")
        bound = register_by_link(li, tokens["李志强"])
        assert "董浜村党总支" in bound.text

        # Another has no link: /start, then the "share my phone number" button.
        wu = RemotePhone(fake_server, MEMBER_BY_PHONE, "吴丽娟")
        welcome = wu.send("/start")
        keyboard = welcome.records[-1]["params"]["reply_markup"]["keyboard"]
        assert keyboard[0][0]["request_contact"] is True, welcome.text
        by_phone = wu.share_contact("8613912340007", shown=2)
        assert "吴丽娟" in by_phone.text and "杜桥村党总支" in by_phone.text

        # The member answers the satisfaction survey by tapping, and submits.
        answer_satisfaction(li)

        # A committee member fills in the self-evaluation.
        wang = RemotePhone(fake_server, COMMITTEE, "王秀英")
        register_by_link(wang, tokens["王秀英"])
        self_total = answer_self_evaluation(wang)

        # An inspector scores two branches, one after the other.
        lin = RemotePhone(fake_server, INSPECTOR, "林德明")
        register_by_link(lin, tokens["林德明"], "8613912340016")
        todo = lin.send("/surveys", contains="已评 0/6 个支部")
        assert "6 个支部" in todo.text
        lin.tap(lin.buttons[0], contains="董浜村党总支")
        inspect_branch(lin, "董浜村党总支")
        listing = lin.tap("📋 评下一个支部", contains="杜桥村党总支")
        assert "董浜村党总支：已提交" in listing.text
        inspect_branch(lin, "杜桥村党总支")

        # The organizer reads the tally, the ranking, the workbook and the charts.
        zheng = RemotePhone(fake_server, ORGANIZER, "郑宏伟")
        register_by_link(zheng, tokens["郑宏伟"], "8613912340018")
        tally = zheng.send("/tally")
        rows = table_rows(tally.text)
        assert len(rows) == 6, tally.text  # every branch of the township
        # One ballot is under the small-group threshold of five, so 董浜村's satisfaction
        # part is left out and the 30/30 weights of self-evaluation and inspection renormalized.
        assert rows["董浜村"][:2] == ["1", f"{(self_total + 100) / 2:.2f}"]
        assert rows["杜桥村"][:2] == ["0", "100.00"]  # the inspection alone
        ranking = zheng.send("/rank")
        assert "董浜村" in ranking.text and "杜桥村" in ranking.text
        export = zheng.send("/export", documents=1)
        (document,) = export.documents
        assert document["file_name"].endswith(".xlsx")
        workbook = load_workbook(io.BytesIO(fake_server.download(document["file_id"])))
        assert sheet_row(workbook["自评明细"], "董浜村党总支")["自评得分"] == self_total
        village = sheet_row(workbook["党员群众满意度测评汇总表"], "董浜村党总支")
        assert village["有效测评票数"] == 1
        charts = zheng.send("/chart", photos=2)
        assert len(charts.photos) == 2

        # A member asking for the tally is politely refused, and shown no figures.
        refused = li.send("/tally")
        assert refused.text == t("report.refused")

        every_call = fake_server.requests()
        assert [c for c in every_call if c["status"] != 200] == []
    finally:
        exit_code = bot.stop()

    output = bot.output()
    assert exit_code == 0, output
    assert TOKEN not in output and TOKEN.split(":")[1] not in output

    check_database(database_url, self_total)
    check_reminders(fake_server, workdir, online)


def check_database(database_url: str, self_total: Decimal) -> None:
    """The ballot only counted, the self-evaluation and both inspections stored by name."""
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            li_id, wang_id, lin_id = (person_id(session, n) for n in ("李志强", "王秀英", "林德明"))
            village = session.exec(
                select(Organization).where(Organization.name == "董浜村党总支")
            ).one()
            ballots = session.exec(
                select(SatisfactionBallots).where(SatisfactionBallots.org_id == village.id)
            ).one()
            assert ballots.ballots == 1
            satisfaction = session.exec(
                select(Assignment).where(
                    Assignment.person_id == li_id, Assignment.instrument_id == "satisfaction"
                )
            ).one()
            assert (satisfaction.status, satisfaction.submitted_at) == ("submitted", None)
            assert session.exec(select(Response).where(Response.person_id == li_id)).all() == []
            (self_evaluation,) = session.exec(
                select(Response).where(Response.person_id == wang_id)
            ).all()
            assert self_evaluation.total == self_total
            inspections = session.exec(select(Response).where(Response.person_id == lin_id)).all()
            assert sorted(r.total for r in inspections) == [Decimal(100), Decimal(100)]
            accounts = session.exec(select(TelegramAccount.telegram_user_id)).all()
            assert sorted(accounts) == sorted(REGISTERED)
    finally:
        engine.dispose()


def check_reminders(server: FakeServer, workdir: Path, env: dict[str, str]) -> None:
    """With the bot stopped, `ceping remind --force` reaches who still owes an answer itself."""
    before = server.log_size()
    reminded = ceping(workdir, env, "remind", "--force")
    sent = server.requests("sendMessage", since=before)
    per_chat: dict[int, int] = {}
    for call in sent:
        chat_id = int(call["params"]["chat_id"])
        per_chat[chat_id] = per_chat.get(chat_id, 0) + 1
    # 吴丽娟 and 王秀英 owe the satisfaction survey, 林德明 four branches, the organizer the
    # committee's scoring; 李志强 is done. Each owes one phase, so one reminder each.
    assert per_chat == {MEMBER_BY_PHONE: 1, COMMITTEE: 1, INSPECTOR: 1, ORGANIZER: 1}
    assert all(REGISTERED[int(c["params"]["chat_id"])] in c["params"]["text"] for c in sent)
    assert all(call["status"] == 200 for call in sent)
    assert t("cli.remind.done", count=4) in reminded.stdout
    assert TOKEN not in reminded.stdout + reminded.stderr


def test_a_tap_pushed_as_a_raw_update_can_be_answered_once(fake_server: FakeServer) -> None:
    query = {"id": "77", "from": {"id": 5, "is_bot": False, "first_name": "甲"}, "data": "x"}
    query["chat_instance"] = "5"
    fake_server.control("POST", "updates", json={"callback_query": query})

    def answer() -> int:
        url = f"{fake_server.base_url}{TOKEN}/answerCallbackQuery"
        return fake_server.client.post(url, json={"callback_query_id": "77"}).status_code

    assert answer() == 200  # as the bot answers a real tap
    assert answer() == 400  # Telegram: "query is too old" the second time


def test_a_rejected_token_is_one_clear_line_without_a_traceback_or_the_token(
    fake_server: FakeServer, database_url: str, tmp_path: Path
) -> None:
    env = ceping_env(database_url, fake_server)
    ceping(tmp_path, env, "init")
    wrong = "999999:WRONG-SECRET-PART"
    env["CEPING_BOT_TOKEN"] = wrong

    done = subprocess.run(
        ceping_command("run"), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )

    output = done.stdout + done.stderr
    assert done.returncode == 1
    assert t("cli.run.invalid_token", "zh_CN") in output
    assert "Traceback" not in output
    assert "WRONG-SECRET-PART" not in output
