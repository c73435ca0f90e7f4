from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster import ProcessCluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ProcessCluster]:
    processes = ProcessCluster(tmp_path)
    try:
        processes.start()
        yield processes
    finally:
        processes.close()


# Checkpoints every 150 instances and 40 kept below them: a few hundred writes make the
# logs start past a node that was away.
SMALL_CHECKPOINTS = ("--checkpoint-every", "150", "--log-keep", "40")


@pytest.fixture
def small_cluster(tmp_path: Path) -> Iterator[ProcessCluster]:
    processes = ProcessCluster(tmp_path, extra_args=SMALL_CHECKPOINTS)
    try:
        processes.start()
        yield processes
    finally:
        processes.close()
