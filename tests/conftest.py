"""Shared fixtures: a worker with a fixed seed."""

import pytest

import bayesworker as bw


@pytest.fixture
def worker():
    with bw.InferenceWorker(threads=2, seed=12345) as w:
        yield w
