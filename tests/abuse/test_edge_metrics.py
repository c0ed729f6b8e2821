"""/metrics is not for the public: with a token set a scrape needs it, and with a metrics port
set the public port does not serve it at all."""

from __future__ import annotations

import httpx

from tests.conftest import ServerFactory, free_port

TOKEN = "scrape-token-0123456789abcdef"


async def test_metrics_need_the_token_when_one_is_set(make_server: ServerFactory) -> None:
    server = await make_server(metrics_token=TOKEN)
    async with server.http() as http:
        anonymous = await http.get("/metrics")
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
        right = await http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "not_authenticated"
    assert wrong.status_code == 401
    assert right.status_code == 200 and "audio_rooms_rooms" in right.text


async def test_metrics_on_their_own_port(make_server: ServerFactory) -> None:
    port = free_port()
    server = await make_server(metrics_port=port, metrics_token=TOKEN)
    async with server.http() as http:
        public = await http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert (await http.get("/healthz")).status_code == 200
    assert public.status_code == 404
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
        anonymous = await http.get("/metrics")
        scraped = await http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        elsewhere = await http.get("/api/config", headers={"Authorization": f"Bearer {TOKEN}"})
    assert anonymous.status_code == 401
    assert scraped.status_code == 200 and "audio_rooms_event_loop_lag_seconds" in scraped.text
    assert elsewhere.status_code == 404
