"""Shared fixtures of the unit tests: the default profile and its token counter."""

from __future__ import annotations

import pytest

from mockserver.accounting.tokens import TokenCounter
from mockserver.profile import Profile, load_profile


@pytest.fixture(scope="module")
def profile() -> Profile:
    return load_profile()


@pytest.fixture(scope="module")
def counter(profile: Profile) -> TokenCounter:
    return TokenCounter(profile.overheads)
