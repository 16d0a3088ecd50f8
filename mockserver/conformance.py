"""Old import path of :mod:`mockserver.contract.conformance`, kept for users' code."""

from .contract.conformance import *  # noqa: F403
from .contract.conformance import __all__ as __all__
