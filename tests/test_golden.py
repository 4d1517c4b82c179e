"""The redesign keeps every number: summaries and draws of every model, for a fixed seed and
call sequence, are bit-identical to tests/golden/golden.json (recorded before the redesign by
tests/golden/make_golden.py)."""

import json
import os
import sys

import pytest

import bayesworker as bw

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "golden"))
import make_golden  # noqa: E402


@pytest.fixture(scope="module")
def replay():
    return make_golden.record(bw)


@pytest.fixture(scope="module")
def golden():
    with open(make_golden.GOLDEN) as f:
        return json.load(f)


def test_same_call_sequence(replay, golden):
    assert [r["model"] for r in replay] == [g["model"] for g in golden]
    assert [r["model_type"] for r in replay] == [g["model_type"] for g in golden]


@pytest.mark.parametrize("i", range(len(make_golden._data())))
def test_every_number_is_bit_identical(replay, golden, i):
    got, want = replay[i], golden[i]
    assert sorted(got) == sorted(want), got["model"]
    for key in want:
        assert got[key] == want[key], f"{want['model']}: {key} differs"
