"""The signalling benchmark still runs end to end and reports numbers that make sense.

It is the instrument issue 12's figures come from, so a change to the protocol or the server's
start-up that silently broke it (every join refused, no delta measured, a server that never
came up) should fail here rather than in the next measurement. No figure is held to a speed:
only that everyone joined, every listener got every stage delta, and the CPU and memory
readings are real (positive, finite).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_thirty_guests_over_two_servers_and_two_client_processes(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    completed = subprocess.run(
        [sys.executable, str(REPO / "bench" / "signalling.py"), "--clients", "30",
         "--servers", "2", "--processes", "2", "--actions", "4", "--action", "mute",
         "--no-pin", "--json", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=100,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "joins/s per successive 3" in completed.stdout
    (result,) = json.loads(out.read_text())["results"]

    assert result["joined"] == 30 and result["failed"] == {} and not result["time_limited"]
    assert result["node_joins"] == [15, 15]  # round-robin over both servers
    assert len(result["bucket_rates"]) == 10 and all(r > 0 for r in result["bucket_rates"])
    assert result["actions"] == 4
    assert result["delivered"] == result["expected"] == 30 * 4
    assert result["clients_missing_a_delta"] == 0
    assert 0 < result["latency_ms_p50"] <= result["latency_ms_p99"] < 10_000
    assert result["join_server_cpu_s"] > 0 and result["action_server_cpu_s"] > 0
    assert all(rss > 0 for rss in result["rss_before"] + result["rss_after"])
    assert math.isfinite(result["joins_per_second"]) and result["joins_per_second"] > 0
