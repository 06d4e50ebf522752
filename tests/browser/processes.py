"""Processes and sockets of the browser tests, read from Linux /proc (no psutil needed)."""
from __future__ import annotations

import ipaddress
import os
import signal
import time
from pathlib import Path


def descendants(pid: int) -> list[int]:
    """Process ids of all descendants of ``pid`` (Linux /proc; empty elsewhere)."""
    parents = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            parents[int(entry.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        found += kids
        frontier += kids
    return found


def processes_mentioning(text: str) -> list[int]:
    """Process ids whose command line contains ``text`` (e.g. a Chromium profile folder)."""
    pids = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if text.encode() in cmdline:
            pids.append(int(entry.name))
    return pids


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def stop(pids: list[int], timeout: float = 10.0) -> list[int]:
    """SIGTERM each pid, wait, then SIGKILL survivors. Returns the pids that needed SIGKILL."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.1)
    killed = [p for p in pids if alive(p)]
    for pid in killed:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return killed


def inet_sockets(pids) -> list[tuple[str, str, str, str]]:
    """(protocol, local address, remote address, state) of the TCP/UDP sockets ``pids`` hold.

    Read from Linux /proc; addresses as ``ip:port``. Empty where /proc is not available.
    """
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    found = []
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        table = Path(f"/proc/net/{proto}")
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                found.append((proto, _address(fields[1]), _address(fields[2]), _TCP_STATES.get(fields[3], fields[3])))
    return found


_TCP_STATES = {"01": "ESTABLISHED", "0A": "LISTEN", "06": "TIME_WAIT", "08": "CLOSE_WAIT"}


def _address(field: str) -> str:
    """Decode /proc/net's hex ``ADDR:PORT`` (little-endian 32-bit words) to ``ip:port``."""
    hex_ip, hex_port = field.split(":")
    raw = bytes.fromhex(hex_ip)
    raw = b"".join(raw[k:k + 4][::-1] for k in range(0, len(raw), 4))
    return f"{ipaddress.ip_address(raw)}:{int(hex_port, 16)}"


def is_loopback(address: str) -> bool:
    """Whether ``ip:port`` is on loopback (0.0.0.0 and :: are not: they mean every interface)."""
    ip = ipaddress.ip_address(address.rsplit(":", 1)[0])
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or bool(mapped and mapped.is_loopback)


def off_loopback(pids) -> list[tuple[str, str, str, str]]:
    """Sockets of ``pids`` bound beyond loopback or connected to a non-loopback peer."""
    def unconnected(address):
        return ipaddress.ip_address(address.rsplit(":", 1)[0]).is_unspecified

    return [s for s in inet_sockets(pids)
            if not is_loopback(s[1]) or not (unconnected(s[2]) or is_loopback(s[2]))]
