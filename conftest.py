"""Host-side pytest configuration.

guest-tests/ runs inside the VM (the harness boots it); host pytest only
collects the harness's own unit tests.
"""

collect_ignore = ["guest-tests", "results", ".venv", "kernel-patches"]


def pytest_addoption(parser):  # type: ignore[no-untyped-def]
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite the expected headers of harness/tests/data/logscan fixtures")
