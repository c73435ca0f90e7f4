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
