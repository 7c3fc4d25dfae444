"""Run the fake Bot API as its own process: python -m tests.fakebot --port N.

Prints the base URL on the first line of stdout (then base_file_url and the token), serves
until SIGINT/SIGTERM. Other processes inject updates through the /_fake/* control endpoints.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from tests.fakebot.server import FakeBotApi


def _parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.fakebot", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--token", default="123456:TEST-TOKEN")
    parser.add_argument("--username", default="ceping_test_bot")
    parser.add_argument(
        "--multiple-pollers",
        action="store_true",
        help="let several getUpdates pollers coexist instead of answering 409",
    )
    parser.add_argument(
        "--open-chats",
        action="store_true",
        help="treat every private chat as open, as if each person had written to the bot",
    )
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    api = FakeBotApi(token=args.token, username=args.username)
    api.allow_multiple_pollers = args.multiple_pollers
    api.open_chats = args.open_chats
    await api.start(port=args.port)
    try:
        print(api.base_url, flush=True)
        print(api.base_file_url, flush=True)
        print(api.token, flush=True)
        await stop.wait()
    finally:
        await api.stop()


def main(argv: list[str] | None = None) -> None:
    """Entry point for python -m tests.fakebot."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(_parse_args(argv)))


if __name__ == "__main__":
    main()
