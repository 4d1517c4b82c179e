"""The CI scripts name tests that exist: a renamed test must not silently slip back into
the sanitizer run it was deselected from (or out of the run that needs it)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_deselected_test_of_the_sanitizer_run_exists():
    script = (ROOT / ".ci" / "sanitize").read_text()
    names = re.findall(r'--deselect "([^"]+)"', script)
    assert names, "the sanitizer run deselects the tests that measure RSS or cap memory"
    for node in names:
        path, _, name = node.partition("::")
        source = (ROOT / path).read_text()
        assert re.search(rf"^(async )?def {re.escape(name)}\(", source, re.M), \
            f".ci/sanitize deselects {node}, which does not exist"
