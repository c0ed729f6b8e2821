"""What the benchmarks need of the processes they start and measure, from /proc and the OS:
free ports, open-file limits, CPU seconds, RSS, and a bounded stop. Imported by the bench
scripts run as ``python bench/NAME.py`` (their folder is first on ``sys.path``)."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def raise_open_files() -> None:
    """Raise this process's soft open-files limit to its hard one (also as ``preexec_fn``, so
    a server started for a bench can hold thousands of sockets)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def stop_process(process: subprocess.Popen[bytes], sig: int, wait: float) -> None:
    """Send ``sig``; kill the process if it has not ended within ``wait`` seconds."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(wait)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
