"""Shared fixtures: workers with fixed seeds, and an event loop runner for plain tests."""

import asyncio

import pytest

import bayesworker as bw


@pytest.fixture
def worker():
    with bw.InferenceWorker(threads=2, seed=12345) as w:
        yield w


def run(coro):
    """Run a coroutine on a fresh event loop (tests stay plain functions)."""
    return asyncio.run(coro)
