"""Hypothesis profiles: CI replays the same examples every run; a developer's run explores.

The fuzz suites (commands, ingest, stream, scenarios, CCSDS) search for new failures with
fresh random examples wherever they run, except in CI (``CI=true``), where a landing must
not depend on the luck of the draw: there they are derandomized, the same examples each
time. ``HYPOTHESIS_PROFILE=ci`` replays CI's examples anywhere.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE")
                      or ("ci" if os.environ.get("CI") == "true" else "dev"))

# The `twin` fixture (odc.pytest_plugin) for procedures written as tests. The pytest11 entry
# point of the same name registers it where the package is installed; naming it here keeps
# `make test` working before a reinstall (one name: pytest loads it once either way).
pytest_plugins = ["odc.pytest_plugin"]
