"""Soak (benchmarks/soak.py, briefly): 16 clients, 2 workers, adaptive batching; every
response checked against the in-process model; memory reported; nothing left behind."""

import os

import pytest

from benchmarks.soak import soak

pytestmark = pytest.mark.slow

# A short soak in `make test`; `make soak` runs the long one (300 s) and keeps its report.
SECONDS = int(os.environ.get("SOAK_SECONDS", 20))
# After warm-up (every merged batch size met once by each worker: its first meeting
# allocates oneDNN kernels and pools, about 1 GB per worker here) the server's memory
# stays flat: in 60 s soaks it ended within 0.5 % of its start, with peaks of +2.7 %.
MAX_RSS_GROWTH = 0.05


def test_soak_has_no_failed_or_wrong_response_and_leaves_nothing_behind(checkpoint, capsys):
    report = soak(checkpoint, SECONDS)
    with capsys.disabled():
        print(f"\nsoak: {report['requests']} requests in {report['seconds']} s, "
              f"{report['failed']} failed, {report['wrong']} wrong; server RSS {report['rss_mb']['start']} MB "
              f"-> {report['rss_mb']['end']} MB (max {report['rss_mb']['max']})")
    assert report["requests"] >= 50
    assert report["failed"] == 0 and report["wrong"] == 0
    assert report["server_processes"] >= 3  # main + 2 workers
    rss = report["rss_mb"]
    assert rss["end"] <= rss["start"] * (1 + MAX_RSS_GROWTH), rss
    assert report["left_behind"] == {"processes": False, "ports": []}
