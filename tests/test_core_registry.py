"""The model registry of the C core (csrc/registry.c, family.h): one row per family, the only
list of families, exported as _core.MODELS, and the generic Core API that asks the rows."""

import pathlib
import re

import numpy as np
import pytest

import bayesworker as bw
from bayesworker import _core

CSRC = pathlib.Path(__file__).resolve().parents[1] / "csrc"
ROWS = {m["name"]: m for m in _core.MODELS}
KEYS = {"name", "code", "parts", "part_codes", "prior", "prior_per_category", "rules", "stats",
        "value_stats", "data", "iterative"}


def test_every_row_is_complete_and_unique():
    assert len(ROWS) == len(_core.MODELS)
    assert len({m["code"] for m in _core.MODELS}) == len(_core.MODELS)
    for m in _core.MODELS:
        assert set(m) == KEYS, m["name"]
        assert len(m["parts"]) == len(m["part_codes"]) >= 1
        assert all(isinstance(k, str) and isinstance(v, float) for k, v in m["prior"])
        assert set(m["rules"]) <= set(_core.VALUE_RULES[1:])
        assert m["stats"][:len(m["value_stats"])] == m["value_stats"]
        assert set(m["data"]) <= {"counts", "values", "stats", "options"}
        assert m["iterative"] == ("options" in m["data"])


@pytest.fixture
def core():
    c = _core.Core(2, 11)
    yield c
    c.close()


def _fit(core, model, **kw):
    row = ROWS[model] if isinstance(model, str) else next(m for m in _core.MODELS
                                                           if m["code"] == model)
    prior = tuple(v for _, v in row["prior"])
    if row["prior_per_category"]:
        prior = prior * len(kw["values"])
    job = core.fit(model, prior, **kw)
    assert job.wait(60) and job.status == "ok", job.exception
    return job


DATA = {
    "beta-binomial": dict(successes=30, trials=100),
    "normal": dict(values=np.linspace(-1.0, 3.0, 50)),
    "lognormal": dict(values=np.linspace(0.5, 3.0, 50)),
    "exponential": dict(values=np.linspace(0.1, 3.0, 50)),
    "poisson": dict(values=np.arange(50.0) % 7),
    "compound-beta-lognormal": dict(successes=40, trials=100,
                                    values=np.linspace(0.5, 3.0, 40)),
    "compound-beta-exponential": dict(successes=40, trials=100,
                                      values=np.linspace(0.1, 3.0, 40)),
    "normal-mixture": dict(values=np.r_[np.linspace(-6, -4, 60), np.linspace(4, 6, 60)],
                           options=((1, 2), 1e-8, 200)),
    "lognormal-mixture": dict(values=np.exp(np.linspace(0, 2, 80)), options=((2,), 1e-8, 200)),
    "compound-beta-lognormalmixture": dict(successes=80, trials=100,
                                           values=np.exp(np.linspace(0, 2, 80)),
                                           options=((2,), 1e-8, 200)),
    "dirichlet-multinomial": dict(values=np.array([3.0, 0.0, 12.0, 5.0])),
}


@pytest.mark.parametrize("model", sorted(ROWS))
def test_each_family_fits_describes_draws_and_intervals_through_its_row(core, model):
    row = ROWS[model]
    job = _fit(core, model, **DATA[model])
    by_code = _fit(core, row["code"], **DATA[model])
    a, b = core.get(job.result), core.get(by_code.result)
    assert a["model"] == row["code"] and a["model_type"] == model
    assert len(a["stats"]) == len(row["stats"])
    for x, y in zip(a["parts"], b["parts"]):
        assert x["mean"] == y["mean"] and x["intervals"] == y["intervals"]
    assert (job.report is not None) == row["iterative"]
    assert job.mixture_report == job.report
    part = row["part_codes"][0]
    width = a["dirichlet"]["k"] if "dirichlet" in a else 1     # doubles per draw
    out = np.empty(5000 * width)
    j = core.sample(job.result, part, out, None, start=0)
    assert j.wait(60) and j.status == "ok"
    assert np.isfinite(out).all()
    # start=0 reserved nothing: the first draws handed out are those positions again
    assert np.array_equal(core.sample_now(job.result, part, np.empty(100 * width)),
                          out[:100 * width])
    assert core.reserve(job.result, part, 10) == 100
    lo, hi = core.interval_now(job.result, row["part_codes"][-1], 0.5)     # (first of) the
    assert lo <= hi                                                       # last kind of part


def test_a_posterior_is_sized_for_its_family(core):
    small = core.get(_fit(core, "beta-binomial", **DATA["beta-binomial"]).result)["bytes"]
    compound = core.get(_fit(core, "compound-beta-lognormal",
                             **DATA["compound-beta-lognormal"]).result)["bytes"]
    mixture = core.get(_fit(core, "normal-mixture", **DATA["normal-mixture"]).result)["bytes"]
    assert small < 512 < compound < 1024 < 3000 < mixture


@pytest.mark.parametrize("call, match", [
    (lambda c: c.fit("gamma-poisson", (1.0, 1.0)), "model 'gamma-poisson' is not in the registry"),
    (lambda c: c.fit(99, (1.0, 1.0)), "model 99 is not in the registry"),
    (lambda c: c.fit("beta-binomial", (1.0,), successes=1, trials=2), "has 1 numbers; it takes 2"),
    (lambda c: c.fit("beta-binomial", (1.0, -2.0), successes=1, trials=2),
     r"prior beta = -2 must be finite and > 0"),
    (lambda c: c.fit("normal", (float("nan"), 1.0, 1.0, 1.0), values=np.ones(3)),
     r"prior mu = nan must be finite"),
    (lambda c: c.fit("beta-binomial", (1.0, 1.0), values=np.ones(3)), "takes no values"),
    (lambda c: c.fit("normal", (0.0, 1.0, 1.0, 1.0), successes=1, trials=2),
     "takes no successes"),
    (lambda c: c.fit("normal", (0.0, 1.0, 1.0, 1.0), stats=(1.0, 2.0)), "takes 3 statistics"),
    (lambda c: c.fit("normal", (0.0, 1.0, 1.0, 1.0), values=np.ones(3), stats=(3, 1.0, 0.0)),
     "not both"),
    (lambda c: c.fit("normal", (0.0, 1.0, 1.0, 1.0), options=((2,), 0.0, 5)), "takes no options"),
    (lambda c: c.fit("normal-mixture", tuple(v for _, v in ROWS["normal-mixture"]["prior"]),
                     values=np.ones(3)), "needs options"),
    (lambda c: c.fit("normal-mixture", tuple(v for _, v in ROWS["normal-mixture"]["prior"]),
                     values=np.ones(3), options=((9,), 0.0, 5)), "K = 9"),
    (lambda c: c.fit("beta-binomial", (1.0, 1.0), successes=5, trials=2), "inconsistent"),
])
def test_a_bad_request_is_refused_before_any_work(core, call, match):
    with pytest.raises(bw.ModelError, match=match):
        call(core)
    assert core.live_jobs() == 0


def test_a_part_that_cannot_be_drawn_is_refused(core):
    post = _fit(core, "beta-binomial", **DATA["beta-binomial"]).result
    with pytest.raises(bw.ModelError, match=r"\(beta-binomial\) has no part 3 to draw"):
        core.sample(post, 3, np.empty(10), None)
    with pytest.raises(bw.DisposedError):
        core.remove(post)
        core.reserve(post, 0, 1)


def test_nothing_outside_the_family_files_branches_on_a_model():
    """The table is the only list of families: model codes appear in the rows only."""
    for p in sorted(CSRC.glob("*.[ch]")):
        text = p.read_text()
        if p.name.startswith("fam_") or p.name == "registry.c":
            continue
        assert not re.search(r"BW_M_[A-Z]|->code\s*[!=]=|model\s*[!=]=", text), p.name
