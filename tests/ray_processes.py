"""Helpers for tests that start Ray in other processes: list what they listen on, and end exactly what they started.

Used by ``tests/test_runtime.py`` (a command's own Ray) and ``tests/test_jobs.py`` (a ``ray start --head`` from the
README). Processes are found as the descendants of a process the test started and the members of a process group
it created (``start_new_session=True``); psutil checks a process's start time before signalling it, so a pid that
was reused by someone else's process is never touched.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import socket

import psutil


def is_loopback(ip: str) -> bool:
    """True for 127.0.0.0/8, ::1 and IPv4-mapped loopback (``::ffff:127.0.0.1``, how a dual-stack socket shows)."""
    address = ipaddress.ip_address(ip.split("%", 1)[0])
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def label(proc: psutil.Process) -> str:
    """``PID command line`` (first 160 characters; Ray's workers and agents rename theirs to ``ray::NAME``)."""
    try:
        return f"{proc.pid} {' '.join(proc.cmdline())[:160] or proc.name()}"
    except psutil.Error:
        return f"{proc.pid} (gone)"


def receiving_sockets(proc: psutil.Process) -> list[tuple[str, str, int]]:
    """(``tcp``/``udp``, local ip, port) of each listening TCP socket and each unconnected UDP socket of ``proc``."""
    out = []
    try:
        for conn in proc.net_connections(kind="inet"):
            if conn.type == socket.SOCK_STREAM and conn.status == psutil.CONN_LISTEN:
                out.append(("tcp", conn.laddr.ip, conn.laddr.port))
            elif conn.type == socket.SOCK_DGRAM and not conn.raddr:
                out.append(("udp", conn.laddr.ip, conn.laddr.port))
    except psutil.Error:
        pass
    return out


def group_members(pgid: int) -> dict[int, psutil.Process]:
    """Every live process of process group ``pgid``."""
    found: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid:
                found[proc.pid] = proc
        except (ProcessLookupError, psutil.Error):
            continue
    return found


def group_and_descendants(pgid: int) -> dict[int, psutil.Process]:
    """Every live process of process group ``pgid`` and every descendant of those (which may have left the group)."""
    found = group_members(pgid)
    for proc in list(found.values()):
        try:
            for child in proc.children(recursive=True):
                found.setdefault(child.pid, child)
        except psutil.Error:
            continue
    return found


def exposed(procs) -> tuple[dict[tuple[str, str, int], str], list[str]]:
    """The receiving sockets of ``procs`` (socket -> process label) and, as lines, those not on loopback."""
    seen: dict[tuple[str, str, int], str] = {}
    for proc in procs:
        for sock in receiving_sockets(proc):
            seen.setdefault(sock, label(proc))
    return seen, sorted(f"{kind} {ip}:{port}  <- {who}" for (kind, ip, port), who in seen.items()
                        if not is_loopback(ip))


def end_group(pgid: int, *, also=(), grace_s: float = 5.0) -> None:
    """End process group ``pgid`` and its members' descendants, plus ``also`` (processes seen earlier): SIGTERM,
    then SIGKILL for whatever is alive after ``grace_s``."""
    procs = {**{p.pid: p for p in also}, **group_and_descendants(pgid)}
    if group_members(pgid):  # a group id is not reused while the group has a member: this is still ours
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for proc in procs.values():
        try:
            if proc.is_running():  # same pid and start time
                proc.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(list(procs.values()), timeout=grace_s)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=grace_s)


def kill_group(pgid: int, *, timeout_s: float = 30.0) -> None:
    """SIGKILL process group ``pgid`` (a command started with ``start_new_session``) and every descendant of its
    members (Ray's processes), and wait until they are gone."""
    procs = list(group_and_descendants(pgid).values())
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for p in procs:
        try:
            p.kill()
        except psutil.Error:  # already gone
            pass
    psutil.wait_procs(procs, timeout=timeout_s)
