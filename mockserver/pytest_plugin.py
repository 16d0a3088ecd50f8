"""The pytest plugin's entry point (``pytest11: mockserver``).  The plugin lives in
:mod:`mockserver.testing.plugin`; pytest loads this module, so its hooks and fixtures are
re-exported here by name (``MockServer`` on first use, as there)."""

from typing import Any

from .testing.plugin import (
    _mockserver_marker as _mockserver_marker,
    _mockserver_session as _mockserver_session,
    mockserver as mockserver,
    pytest_addoption as pytest_addoption,
    pytest_configure as pytest_configure,
    pytest_report_header as pytest_report_header,
    pytest_runtest_call as pytest_runtest_call,
)

__all__ = ["MockServer"]  # noqa: F822 (on first use, see __getattr__)


def __getattr__(name: str) -> Any:
    from .testing import plugin

    return getattr(plugin, name)
