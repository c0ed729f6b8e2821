"""JSON logs carry room and participant ids and never a token."""

from __future__ import annotations

import json
import logging

import pytest

from audio_rooms.logs import ContextFilter, JsonFormatter
from audio_rooms.settings import LogFormat, load_settings
from tests.conftest import AccountFactory, RunningServer, create_room, join


async def test_json_log_lines_carry_ids_and_no_secrets(
    server: RunningServer, make_account: AccountFactory, caplog: pytest.LogCaptureFixture
) -> None:
    assert load_settings(log_format="json").log_format is LogFormat.JSON
    caplog.handler.addFilter(ContextFilter())
    caplog.set_level(logging.INFO)
    host = await make_account("Host")
    room_id = await create_room(server, host)
    await join(server, room_id, host)
    formatter = JsonFormatter()
    lines = [json.loads(formatter.format(r)) for r in caplog.records]
    joined = [line for line in lines if "joined as host" in line["message"]]
    assert joined and joined[0]["room_id"] == room_id and joined[0]["user_id"] == host.user_id
    everything = "\n".join(formatter.format(r) for r in caplog.records)
    assert host.token not in everything
    assert server.settings.secret_key and server.settings.secret_key not in everything
