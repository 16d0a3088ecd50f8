"""The source step's one mode-aware place: ``--mode`` -> the source that answers."""

from __future__ import annotations

from ..cassettes.library import Library
from ..wire.reply import Reply
from ..wire.request import ApiRequest, CheckedRequest
from .host import Host, Source
from .recorder import make_record_source
from .replay import ReplaySource
from .synth import SynthSource


def make_source(host: Host) -> Source:
    """Map the mode to a source (the one place that does).

    ``synth``: SynthSource.  ``auto``: replay the cassettes, synthesize misses.  ``replay``:
    cassettes only, a miss is a 404.  ``record``: forward everything upstream and record it.
    ``record-new``: replay hits, forward and record misses.
    """
    mode = host.settings.mode
    synth = SynthSource(host)
    if mode == "synth":
        return synth
    if mode in ("auto", "replay"):
        library = Library(host.settings.cassette_dir, host.settings.ignore_paths)

        async def synthesize(req: ApiRequest, checked: CheckedRequest | None) -> Reply:
            assert checked is not None  # auto mode checks every request
            return await synth.reply(req, checked)

        return ReplaySource(host, library, synthesize if mode == "auto" else None)
    return make_record_source(host)
