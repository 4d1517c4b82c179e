"""The scalar validators, where _proxy.py and _mixture.py import them from.

The data edge was split by job: _validate.py (scalar validators), _inputs.py (input
adapters), _rules.py (value rules), _priors.py (prior and option checks), _request.py
(``prepare`` and ``FitRequest``), _auto.py (model choice) and models/ (the families).
This module only re-exports the three validators the proxies use; delete it once they
import them from ._validate.
"""

from ._validate import validate_batch_size, validate_count, validate_level

__all__ = ["validate_level", "validate_count", "validate_batch_size"]
