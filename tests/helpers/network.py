"""Where servers listen and what they send: loopback checks, listening sockets, encodings, folder digests."""

import hashlib
import ipaddress
import os

import requests

from labkit.measure import payload_body


def folder_digest(folder):
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def is_loopback(host: str) -> bool:
    """127.0.0.1, ::1, or the IPv4-mapped ::ffff:127.0.0.1 that gRPC binds."""
    address = ipaddress.ip_address(host)
    return (getattr(address, "ipv4_mapped", None) or address).is_loopback


def listening_addresses(pgid):
    import psutil

    addresses = set()
    for process in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(process.pid) != pgid:
                continue
            addresses |= {conn.laddr for conn in process.net_connections(kind="inet")
                          if conn.status == psutil.CONN_LISTEN}
        except (psutil.Error, ProcessLookupError):
            continue
    return addresses


def answer_encoding(server) -> str:
    """How the server encodes a REST answer for a client that accepts gzip (as `requests` does)."""
    answer = requests.post(server.infer_url, data=payload_body("jpeg"), headers={"Accept-Encoding": "gzip"},
                           timeout=60)
    assert answer.ok, answer.text
    return answer.headers.get("Content-Encoding", "identity")
