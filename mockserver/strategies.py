"""Old import path of :mod:`mockserver.contract.strategies`, kept for users' code
(``from mockserver import strategies as ms``)."""

from .contract.strategies import *  # noqa: F403
from .contract.strategies import __all__ as __all__
