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
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from openpyxl import load_workbook
from sqlalchemy import text as sql
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
from tests.support_processes import (
    ROSTER,
    TOKEN,
    USERNAME,
    WAIT,
    FakeServer,
    ceping,
    ceping_command,
    ceping_env,
    start_bot,
)

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
    phone.tap(phone.button_with("支部自评"), contains="第 1/")
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
        # Five of the six: the school (机关事业单位) is not inspected by default (docs/rules.md).
        todo = lin.send("/surveys", contains="已评 0/5 个支部")
        assert "5 个支部" in todo.text
        lin.tap(lin.buttons[0], contains="董浜村")
        inspect_branch(lin, "董浜村")
        listing = lin.tap("📋 评下一个支部", contains="杜桥村")
        assert "董浜村：已提交" in listing.text
        inspect_branch(lin, "杜桥村")

        # The organizer reads the tally, the ranking, the workbook and the charts.
        zheng = RemotePhone(fake_server, ORGANIZER, "郑宏伟")
        register_by_link(zheng, tokens["郑宏伟"], "8613912340018")
        tally = zheng.send("/tally")
        # The round has superior scoring: each pool ranks on the committee's scores, none
        # given yet, so no branch has a score and the six are one line (docs/rules.md §5.5,
        # §6.3; issue 14).
        assert "6个暂无得分" in tally.text, tally.text
        assert "尚未齐全" in tally.text
        # 董浜村's one ballot waits in the sealed box until the phase ends (fewer than twice
        # the small-group threshold are never counted early; docs/anonymity.md).
        assert "已收到 0 票" in zheng.send("/tally 董浜村", contains="董浜村").text
        ranking = zheng.send("/rank")
        assert "董浜村" in ranking.text and "杜桥村" in ranking.text
        export = zheng.send("/export", documents=1)
        (document,) = export.documents
        assert document["file_name"].endswith(".xlsx")
        workbook = load_workbook(io.BytesIO(fake_server.download(document["file_id"])))
        assert sheet_row(workbook["自评明细"], "董浜村党总支")["自评得分"] == self_total
        village = sheet_row(workbook["党员群众满意度测评汇总表"], "董浜村党总支")
        assert village["有效测评票数"] == 0  # still in the box, see above
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
            # The ballot waits sealed in the box (the bot's key is not this process's).
            assert (
                session.exec(
                    select(SatisfactionBallots).where(SatisfactionBallots.org_id == village.id)
                ).all()
                == []
            )
            box = session.execute(
                sql("SELECT ballots FROM satisfaction_box WHERE org_id = :org"),
                {"org": village.id},
            ).scalar_one()
            assert str(box).strip('"').startswith("v1:")
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
