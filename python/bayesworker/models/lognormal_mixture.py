"""lognormal-mixture: a finite mixture of K normals fitted to log x by variational Bayes.

Data: a 1-D array-like of finite values ``> 0`` (or ``{"values": ...}``), no aggregates.
``auto`` compares it with ``lognormal`` when ``lognormal`` wins on raw values.

>>> from bayesworker.models.lognormal_mixture import FAMILY
>>> sorted(FAMILY.check_prior(None))
['a0', 'alpha0', 'b0', 'kappa0', 'm0']
"""

from __future__ import annotations

from .._mixture import MixturePosteriorProxy
from ._mixtures import mixture_family
from ._values import values_parser

NAME = "lognormal-mixture"

FAMILY = mixture_family(NAME, values_parser(NAME, always_check=True), MixturePosteriorProxy,
                        auto_mixture_of="lognormal")
