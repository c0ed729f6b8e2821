"""``audio-rooms``: serve, and the operator's commands.

``audio-rooms serve [--host H] [--port P]`` runs the server with uvicorn; every other setting
comes from ``AUDIO_ROOMS_*`` variables or ``.env`` (docs/operations.md).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from audio_rooms.logs import configure_logging
from audio_rooms.settings import Settings, SettingsError, load_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="audio-rooms", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--host", help="address to bind (default AUDIO_ROOMS_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default AUDIO_ROOMS_PORT or 8000)")

    rooms = commands.add_parser("rooms", help="live and scheduled rooms").add_subparsers(
        dest="rooms_command", required=True
    )
    rooms.add_parser("list", help="list live and scheduled rooms")
    end = rooms.add_parser("end", help="end a live room now")
    end.add_argument("room_id")

    users = commands.add_parser("users", help="accounts").add_subparsers(
        dest="users_command", required=True
    )
    users.add_parser("list", help="list accounts: handle, display name, banned, created")
    ban = users.add_parser("ban", help="ban a user from the whole server")
    ban.add_argument("handle", help="handle, or full id handle@server")
    ban.add_argument("--reason", default="banned by an operator")
    unban = users.add_parser("unban", help="lift a server-wide ban")
    unban.add_argument("handle", help="handle, or full id handle@server")
    return parser


def _print_rows(rows: list[dict[str, object]], none: str) -> None:
    """One line a row, ``key=value`` fields separated by tabs (easy to grep and cut)."""
    for row in rows:
        print("\t".join(f"{k}={v}" for k, v in row.items()))
    if not rows:
        print(none)


async def _admin(settings: Settings, args: argparse.Namespace) -> int:
    from audio_rooms import errors
    from audio_rooms.admin import connect

    async with connect(settings) as admin:
        try:
            if args.command == "rooms" and args.rooms_command == "list":
                _print_rows(await admin.list_rooms(), "no live or scheduled rooms")
            elif args.command == "rooms" and args.rooms_command == "end":
                await admin.end_room(args.room_id)
                print(f"room {args.room_id} ended")
            elif args.command == "users" and args.users_command == "list":
                _print_rows(await admin.list_users(), "no accounts")
            elif args.command == "users" and args.users_command == "ban":
                user_id, rooms = await admin.ban_user(args.handle, args.reason)
                print(f"{user_id} banned: signed out everywhere; removed from {len(rooms)} "
                      "live room(s)")
            elif args.command == "users" and args.users_command == "unban":
                user_id, lifted = await admin.unban_user(args.handle)
                print(f"{user_id} unbanned" if lifted else f"{user_id} was not banned")
        except errors.AudioRoomsError as exc:
            print(f"audio-rooms: {exc.message}", file=sys.stderr)
            return 1
    return 0


def serve(settings: Settings) -> None:
    from audio_rooms.app import create_app
    from audio_rooms.edge import raise_fd_limit
    from audio_rooms.server import DrainingServer, uvicorn_config

    logging.getLogger(__name__).info("open-files limit: %d", raise_fd_limit())
    app = create_app(settings)
    DrainingServer(uvicorn_config(app, settings), app, settings.drain_timeout).run()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides = {}
    if getattr(args, "host", None):
        overrides["host"] = args.host
    if getattr(args, "port", None) is not None:
        overrides["port"] = args.port
    try:
        settings = load_settings(**overrides)
    except SettingsError as exc:
        print(f"audio-rooms: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings)
    if args.command == "serve":
        serve(settings)
        return 0
    return asyncio.run(_admin(settings, args))


if __name__ == "__main__":
    logging.captureWarnings(True)
    raise SystemExit(main())
