"""The source step, the only mode-aware step: where a reply comes from.

``make_source`` is the one place that maps ``--mode`` to behaviour.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from . import sse
from .reply import Reply
from .streaming import UnfoldPlan, unfold
from .synth import compose_message

if TYPE_CHECKING:
    from .request import ApiRequest
    from .rules import CheckedRequest
    from .state import State


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
        usage = st.input_usage(checked)
        usage["output_tokens"] = message["usage"]["output_tokens"]
        usage["service_tier"] = "standard"
        message["usage"] = usage
        return message_reply(message, checked.stream, "synth", st.profile.ping)


def make_source(state: State) -> Source:
    """Map the mode to a source; record/replay sources plug in here."""
    mode = state.settings.mode
    if mode == "synth":
        return SynthSource(state)
    # replay / record modes are added by the record-and-replay layer
    return SynthSource(state)
