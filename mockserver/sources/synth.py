"""The source step, the only mode-aware step: where a reply comes from.

``make_source`` is the one place that maps ``--mode`` to behaviour.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from ..wire import sse
from ..wire.reply import Reply
from ..wire.streaming import UnfoldPlan, unfold
from .compose import compose_message

if TYPE_CHECKING:
    from ..server.checks.rules import CheckedRequest
    from ..server.state import State
    from ..wire.request import ApiRequest


class Source(Protocol):
    async def reply(self, req: ApiRequest, checked: CheckedRequest) -> Reply: ...


def message_reply(message: dict[str, Any], stream: bool, source: str, ping: bool = True) -> Reply:
    """A 200 reply carrying ``message`` as JSON or as the stream that folds into it."""
    if stream:
        events = tuple(
            sse.Event(name, sse.dumps(data))
            for name, data in unfold(message, UnfoldPlan(ping=ping))
        )
        return Reply(status=200, events=events, source=source, message=message)
    return Reply(status=200, body=sse.dumps(message).encode(), source=source, message=message)


class SynthSource:
    """Composes a deterministic message for every request."""

    def __init__(self, state: State) -> None:
        self.state = state

    async def reply(self, req: ApiRequest, checked: CheckedRequest) -> Reply:
        st = self.state
        counter = st.counter
        cached = st.cache_lookup(checked)
        message = compose_message(
            checked.body,
            model=checked.model,
            max_tokens=checked.max_tokens,
            seed=st.settings.seed,
            count_text=counter.text,
            count_output=counter.output,
            message_id_prefix=st.profile.message_id_prefix,
            tool_use_id_prefix=st.profile.tool_use_id_prefix,
        )
        usage = cached.usage()
        usage["output_tokens"] = message["usage"]["output_tokens"]
        usage["service_tier"] = "standard"
        message["usage"] = usage
        reply = message_reply(message, checked.stream, "synth", st.profile.ping)
        cached.commit()  # the prompt's prefixes count for the requests after this reply
        return reply


def make_source(state: State) -> Source:
    """Map the mode to a source (the one place that does).

    ``synth``: SynthSource.  ``auto``: replay the cassettes, synthesize misses.  ``replay``:
    cassettes only, a miss is a 404.  ``record``: forward everything upstream and record it.
    ``record-new``: replay hits, forward and record misses.
    """
    mode = state.settings.mode
    synth = SynthSource(state)
    if mode == "synth":
        return synth
    if mode in ("auto", "replay"):
        from ..cassettes.library import Library
        from .replay import ReplaySource

        library = Library(state.settings.cassette_dir, state.settings.ignore_paths)

        async def synthesize(req: ApiRequest, checked: CheckedRequest | None) -> Reply:
            assert checked is not None  # auto mode checks every request
            return await synth.reply(req, checked)

        return ReplaySource(state, library, synthesize if mode == "auto" else None)
    from .recorder import make_record_source

    return make_record_source(state)
