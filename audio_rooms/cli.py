"""``audio-rooms``: serve, and the operator's commands.

``audio-rooms serve [--host H] [--port P] [--workers N]`` runs the server with uvicorn (N > 1:
a supervisor and N worker processes, workers.py); every other setting comes from
``AUDIO_ROOMS_*`` variables or ``.env`` (docs/operations.md).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from audio_rooms import __version__
from audio_rooms.logs import configure_logging
from audio_rooms.settings import Settings, SettingsError, load_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="audio-rooms",
        description="Self-hostable live audio rooms. Settings come from AUDIO_ROOMS_* variables "
        "or .env (docs/operations.md).",
    )
    parser.add_argument("--version", action="version", version=f"audio-rooms {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--host", help="address to bind (default AUDIO_ROOMS_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default AUDIO_ROOMS_PORT or 8000)")
    serve.add_argument("--workers", type=int, metavar="N",
                       help="server processes (default AUDIO_ROOMS_WORKERS or 0: one per CPU "
                       "core; 1: this process alone)")
    # How a supervisor starts its workers (workers.py); not for operators.
    serve.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    serve.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)
    serve.add_argument("--supervisor-fd", type=int, help=argparse.SUPPRESS)

    rooms = commands.add_parser("rooms", help="live and scheduled rooms").add_subparsers(
        dest="rooms_command", required=True, metavar="ACTION"
    )
    rooms.add_parser("list", help="list live and scheduled rooms")
    end = rooms.add_parser("end", help="end a live room now")
    end.add_argument("room_id")

    nodes = commands.add_parser("nodes", help="server processes sharing the Redis").add_subparsers(
        dest="nodes_command", required=True, metavar="ACTION"
    )
    nodes.add_parser("list", help="list live nodes and the load each last reported")
    users = commands.add_parser("users", help="accounts").add_subparsers(
        dest="users_command", required=True, metavar="ACTION"
    )
    users.add_parser("list", help="list accounts: handle, display name, banned, created")
    ban = users.add_parser("ban", help="ban a user from the whole server")
    ban.add_argument("handle", help="handle, or full id handle@server")
    ban.add_argument("--reason", default="banned by an operator")
    unban = users.add_parser("unban", help="lift a server-wide ban")
    unban.add_argument("handle", help="handle, or full id handle@server")
    create = users.add_parser(
        "create", help="create an account (the password is read from standard input, or "
        "asked for on a terminal); needs only the database, so it works before the first start")
    create.add_argument("handle", help="3-32 of a-z, 0-9 and _")
    create.add_argument("--display-name", default="", help="default: the handle")
    create.add_argument("--admin", action="store_true", help="a server administrator")
    promote = users.add_parser("promote", help="make an account a server administrator")
    promote.add_argument("handle", help="handle, or full id handle@server")
    demote = users.add_parser("demote", help="take the administrator role away")
    demote.add_argument("handle", help="handle, or full id handle@server")
    federation = commands.add_parser(
        "federation", help="links with other deployments (docs/federation.md)"
    ).add_subparsers(dest="federation_command", required=True, metavar="ACTION")
    federation.add_parser("keys", help="print this server's published federation keys")
    ping = federation.add_parser("ping", help="send a signed request to a peer server")
    ping.add_argument("server", help="the peer's server name")
    for verb, what in (("allow", "federate with SERVER (on top of AUDIO_ROOMS_FEDERATION_ALLOW)"),
                       ("deny", "refuse SERVER, whatever the allowlists say"),
                       ("forget", "drop what allow/deny said of SERVER: the settings decide")):
        federation.add_parser(verb, help=what).add_argument("server", help="a server name")
    federation.add_parser("peers", help="list the peers the settings and this CLI allow or deny")
    return parser


async def _federation_peers(settings: Settings, args: argparse.Namespace) -> int:
    """The operator's allow/deny decisions, in the database: every node applies them within
    seconds (federation/peers.py)."""
    import re

    from audio_rooms.db.database import Database

    db = await Database.open(settings.resolved_database_url)
    try:
        if args.federation_command != "peers":
            server = args.server.strip().lower()
            if not re.fullmatch(r"[a-z0-9.-]{1,253}", server):
                print(f"audio-rooms: not a server name: {args.server!r}", file=sys.stderr)
                return 2
            policy = None if args.federation_command == "forget" else args.federation_command
            await db.set_peer_policy(server, policy)
            print(f"{server}: {policy or 'as the settings say'}")
            return 0
        rows: list[dict[str, object]] = []
        rows += [
            {"server": s, "policy": "allow", "from": "settings"} for s in settings.federation_allow
        ]
        rows += [
            {"server": s, "policy": "deny", "from": "settings"} for s in settings.federation_deny
        ]
        rows += [
            {"server": s, "policy": p, "from": "cli"}
            for s, p in sorted((await db.peer_policies()).items())
        ]
        _print_rows(rows, "no peers: federation is with nobody")
        return 0
    finally:
        db.close()


async def _federation(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from audio_rooms import errors
    from audio_rooms.federation.keys import ServerKeys
    from audio_rooms.federation.peers import PeerPolicy
    from audio_rooms.federation.service import Federation

    keys = ServerKeys(settings.server_name, settings.resolved_secret_key(),
                      settings.federation_key_generation, settings.federation_key_retired_until)
    if args.federation_command in ("allow", "deny", "forget", "peers"):
        return await _federation_peers(settings, args)
    if args.federation_command == "keys":
        rows: list[dict[str, object]] = [
            dict(k.to_wire()) for k in keys.published(datetime.now(UTC))
        ]
        _print_rows(rows, "no keys")
        return 0
    federation = Federation(
        settings.federation_enabled, keys,
        PeerPolicy.from_settings(settings.federation_allow, settings.federation_deny,
                                 settings.federation_peer_urls),
        None,
    )
    try:
        answer = await federation.request(args.server, "/ping", {})
    except errors.AudioRoomsError as exc:
        print(f"audio-rooms: {args.server}: {exc.code}: {exc}", file=sys.stderr)
        return 1
    print(f"{args.server} answered: it is {answer.get('server_name')}, we are {answer.get('you')}")
    return 0


def _print_rows(rows: list[dict[str, object]], none: str) -> None:
    """One line a row, ``key=value`` fields separated by tabs (easy to grep and cut)."""
    for row in rows:
        print("\t".join(f"{k}={v}" for k, v in row.items()))
    if not rows:
        print(none)


def _read_password() -> str:
    if sys.stdin.isatty():
        import getpass

        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise ValueError("the passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


async def _accounts(settings: Settings, args: argparse.Namespace) -> int:
    """``users create|promote|demote``: the database alone, no running server needed."""
    from audio_rooms import errors
    from audio_rooms.admin import create_account, set_admin
    from audio_rooms.db.database import Database

    try:
        password = _read_password() if args.users_command == "create" else ""
    except ValueError as exc:
        print(f"audio-rooms: {exc}", file=sys.stderr)
        return 1
    db = await Database.open(settings.resolved_database_url)
    try:
        if args.users_command == "create":
            user = await create_account(db, settings, args.handle, args.display_name, password,
                                        args.admin)
            print(f"{user.id} created" + (", a server administrator" if args.admin else ""))
        else:
            admin = args.users_command == "promote"
            user_id = await set_admin(db, settings, args.handle, admin)
            print(f"{user_id} is {'now' if admin else 'no longer'} a server administrator")
    except errors.AudioRoomsError as exc:
        print(f"audio-rooms: {exc}", file=sys.stderr)
        return 1
    finally:
        db.close()
    return 0


async def _admin(settings: Settings, args: argparse.Namespace) -> int:
    from audio_rooms import errors
    from audio_rooms.admin import connect
    from audio_rooms.datadir import NoRunningServer

    try:
        async with connect(settings) as admin:
            if args.command == "rooms" and args.rooms_command == "list":
                _print_rows(await admin.list_rooms(), "no live or scheduled rooms")
            elif args.command == "nodes" and args.nodes_command == "list":
                _print_rows(await admin.list_nodes(), "no live nodes")
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
    except (errors.AudioRoomsError, NoRunningServer) as exc:
        print(f"audio-rooms: {exc}", file=sys.stderr)
        return 1
    return 0


def serve(settings: Settings) -> int:
    from audio_rooms.app import create_app, prepare_data_dir
    from audio_rooms.datadir import DataDirectoryInUse, ServerLock
    from audio_rooms.edge import raise_fd_limit
    from audio_rooms.server import DrainingServer, log_media_plan, uvicorn_config
    from audio_rooms.state.connect import redis_mode
    from audio_rooms.state.embedded import EmbeddedRedis
    from audio_rooms.workers import Supervisor, worker_count

    # Before anything touches the data directory: a second server would unlink the first one's
    # Redis socket and write to the same append-only file and SQLite database.
    lock = ServerLock(settings.data_dir)
    try:
        # With Sentinel or a cluster there is no one URL: the admin commands take the same
        # AUDIO_ROOMS_REDIS_* settings instead (an empty record says so).
        lock.acquire(settings.redis_url or (
            "" if redis_mode(settings) else EmbeddedRedis(settings.data_dir / "redis").url))
    except DataDirectoryInUse as exc:
        print(f"audio-rooms: {exc}", file=sys.stderr)
        return 1
    try:
        logger = logging.getLogger(__name__)
        logger.info("audio-rooms %s, data directory %s", __version__, settings.data_dir.resolve())
        logger.info("open-files limit: %d", raise_fd_limit())
        log_media_plan(settings)
        workers = worker_count(settings.workers)
        if workers > 1:
            return asyncio.run(Supervisor(settings, workers, prepare_data_dir).run())
        app = create_app(settings)
        DrainingServer(uvicorn_config(app, settings), app, settings.drain_timeout).run()
    finally:
        lock.release()
    return 0


def serve_worker(settings: Settings, index: int, listen_fd: int, supervisor_fd: int) -> int:
    """One worker of a supervisor (workers.py): the supervisor holds the data directory, runs
    the embedded Redis if any (its URL is in this process's AUDIO_ROOMS_REDIS_URL) and has bound
    the port; this process serves on that socket."""
    import socket

    from audio_rooms.app import create_app
    from audio_rooms.edge import raise_fd_limit
    from audio_rooms.server import DrainingServer, uvicorn_config
    from audio_rooms.workers import SupervisorLink

    logger = logging.getLogger(__name__)
    ports = (f"UDP ports {settings.media_port_min}-{settings.media_port_max}"
             if settings.media_port_min is not None else "UDP ports ephemeral")
    logger.info("worker %d: pid %d, %s, open-files limit %d", index, os.getpid(), ports,
                raise_fd_limit())
    supervisor = SupervisorLink(supervisor_fd)
    app = create_app(settings, supervisor=supervisor)
    server = DrainingServer(uvicorn_config(app, settings), app, settings.drain_timeout, supervisor)
    server.run(sockets=[socket.socket(fileno=listen_fd)])
    return 0 if server.started else 3


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides = {}
    if getattr(args, "host", None):
        overrides["host"] = args.host
    if getattr(args, "port", None) is not None:
        overrides["port"] = args.port
    if getattr(args, "workers", None) is not None:
        overrides["workers"] = args.workers
    try:
        settings = load_settings(**overrides)
    except SettingsError as exc:
        print(f"audio-rooms: {exc}", file=sys.stderr)
        return 2
    worker = getattr(args, "worker", None)
    configure_logging(settings, None if worker is None else f"worker {worker}")
    if args.command == "serve" and worker is not None:
        if args.listen_fd is None or args.supervisor_fd is None:
            print("audio-rooms: --worker is started by a supervisor, with --listen-fd and "
                  "--supervisor-fd", file=sys.stderr)
            return 2
        return serve_worker(settings, worker, args.listen_fd, args.supervisor_fd)
    if args.command == "serve":
        return serve(settings)
    if args.command == "users" and args.users_command in ("create", "promote", "demote"):
        return asyncio.run(_accounts(settings, args))
    if args.command == "federation":
        return asyncio.run(_federation(settings, args))
    return asyncio.run(_admin(settings, args))


if __name__ == "__main__":
    logging.captureWarnings(True)
    raise SystemExit(main())
