"""The source step's one mode-aware place: ``--mode`` -> the source that answers."""

from __future__ import annotations

from ..cassettes.library import Library
from ..wire.reply import Reply
from ..wire.request import ApiRequest, CheckedRequest
from .host import Host, Source
from .recorder import make_record_source
from .replay import ReplaySource
from .rules.responder import Rules
from .synth import SynthSource


def make_source(host: Host) -> Source:
    """Map the mode to a source (the one place that does).

    ``synth``: the scripted-reply rules, then SynthSource.  ``auto``: replay the cassettes,
    then the rules, then synthesize.  ``replay``: cassettes, then rules; a miss is a 404.
    ``record``: forward everything upstream and record it.  ``record-new``: replay hits, then
    the rules, then forward and record.
    """
    mode = host.settings.mode
    synth = SynthSource(host)
    rules = Rules(host, synth.reply)
    if mode == "synth":
        return ScriptedThenSynth(rules, synth)
    if mode in ("auto", "replay"):
        library = Library(host.settings.cassette_dir, host.settings.ignore_paths)

        async def synthesize(req: ApiRequest, checked: CheckedRequest | None) -> Reply:
            assert checked is not None  # auto mode checks every request
            return await synth.reply(req, checked)

        return ReplaySource(host, library, synthesize if mode == "auto" else None, rules)
    return make_record_source(host, rules)


class ScriptedThenSynth:
    """``synth`` mode: a rule that holds answers; everything else is synthesized."""

    def __init__(self, rules: Rules, synth: SynthSource) -> None:
        self.rules = rules
        self.synth = synth

    async def reply(self, req: ApiRequest, checked: CheckedRequest) -> Reply:
        scripted = await self.rules.answer(req, checked)
        return scripted if scripted is not None else await self.synth.reply(req, checked)
