"""The ``ceping`` argument parser, with help texts from the catalog."""

from __future__ import annotations

import argparse

from bot.cli.demo import cmd_demo
from bot.cli.env import Parser
from bot.cli.export import cmd_export
from bot.cli.invite import cmd_invite
from bot.cli.roster import cmd_import, cmd_init
from bot.cli.rounds import (
    add_scope_arguments,
    cmd_round_close,
    cmd_round_create,
    cmd_round_list,
    cmd_round_open,
)
from bot.cli.running import cmd_jobs, cmd_remind, cmd_run
from bot.cli.surveys import cmd_surveys_check, cmd_surveys_show
from bot.cli.unbind import cmd_unbind
from surveys.i18n import t

# --- Parser ----------------------------------------------------------------------------------


def build_parser(locale: str) -> argparse.ArgumentParser:
    """The ``ceping`` command line, with help texts from the catalog."""

    def h(key: str) -> str:
        return t(f"cli.help.{key}", locale)

    parser = Parser(prog="ceping", description=h("ceping"))
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    commands.add_parser("init", help=h("init")).set_defaults(handler=cmd_init)

    importing = commands.add_parser("import", help=h("import"))
    importing.add_argument("files", nargs="+", metavar="FILE", help=h("import_files"))
    importing.add_argument("--dry-run", action="store_true", help=h("dry_run"))
    importing.set_defaults(handler=cmd_import)

    rounds = commands.add_parser("round", help=h("round")).add_subparsers(
        dest="round_command", required=True, parser_class=Parser
    )
    creating = rounds.add_parser("create", help=h("round_create"))
    creating.add_argument("name", metavar="NAME")
    creating.add_argument(
        "--deadline",
        action="append",
        required=True,
        metavar="PHASE=YYYY-MM-DDTHH:MM",
        help=h("deadline"),
    )
    creating.add_argument(
        "--opens", action="append", metavar="PHASE=YYYY-MM-DDTHH:MM", help=h("opens")
    )
    creating.add_argument("--open", action="store_true", help=h("open_now"))
    creating.add_argument("--option", action="append", metavar="KEY=VALUE", help=h("option"))
    add_scope_arguments(creating, h)
    creating.set_defaults(handler=cmd_round_create)
    rounds.add_parser("list", help=h("round_list")).set_defaults(handler=cmd_round_list)
    for name, handler in (("open", cmd_round_open), ("close", cmd_round_close)):
        sub = rounds.add_parser(name, help=h(f"round_{name}"))
        sub.add_argument("id", type=int, metavar="ID")
        sub.set_defaults(handler=handler)

    inviting = commands.add_parser("invite", help=h("invite"))
    inviting.add_argument("--round", type=int, metavar="ID", help=h("round_id"))
    inviting.add_argument("--branch", metavar="NAME", help=h("branch"))
    inviting.add_argument("--role", metavar="ROLE", help=h("role"))
    inviting.add_argument("--branch-links", action="store_true", help=h("branch_links"))
    inviting.add_argument("--include-registered", action="store_true", help=h("include_registered"))
    inviting.add_argument("--out", required=True, metavar="FILE", help=h("invite_out"))
    inviting.set_defaults(handler=cmd_invite)

    surveys = commands.add_parser("surveys", help=h("surveys")).add_subparsers(
        dest="surveys_command", required=True, parser_class=Parser
    )
    checking = surveys.add_parser("check", help=h("surveys_check"))
    checking.add_argument("file", metavar="FILE")
    checking.set_defaults(handler=cmd_surveys_check)
    showing = surveys.add_parser("show", help=h("surveys_show"))
    showing.add_argument("id", metavar="ID")
    showing.set_defaults(handler=cmd_surveys_show)

    unbinding = commands.add_parser("unbind", help=h("unbind"))
    unbinding.add_argument("phone", metavar="PHONE", help=h("unbind_phone"))
    unbinding.set_defaults(handler=cmd_unbind)

    running = commands.add_parser("run", help=h("run"))
    running.add_argument(
        "--webhook-url", "--webhook", dest="webhook_url", metavar="URL", help=h("webhook_url")
    )
    running.add_argument("--listen", metavar="ADDRESS", help=h("listen"))
    running.add_argument("--port", type=int, metavar="PORT", help=h("port"))
    running.add_argument("--workers", type=int, metavar="K", help=h("workers"))
    running.set_defaults(handler=cmd_run)
    commands.add_parser("jobs", help=h("jobs")).set_defaults(handler=cmd_jobs)
    reminding = commands.add_parser("remind", help=h("remind"))
    reminding.add_argument("--force", action="store_true", help=h("force"))
    reminding.set_defaults(handler=cmd_remind)

    exporting = commands.add_parser("export", help=h("export"))
    exporting.add_argument("--round", type=int, metavar="ID", help=h("round_id"))
    exporting.add_argument("--out", required=True, metavar="FILE.xlsx", help=h("export_out"))
    exporting.set_defaults(handler=cmd_export)

    demo = commands.add_parser("demo", help=h("demo"))
    demo.add_argument("--database", metavar="URL", help=h("demo_database"))
    demo.set_defaults(handler=cmd_demo)
    return parser
