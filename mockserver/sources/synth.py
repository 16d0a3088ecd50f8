"""``SynthSource``: a deterministic message composed for every request (``compose``), with
the input side of ``usage`` from the prompt-cache simulation."""

from __future__ import annotations

from typing import Any

from ..wire.reply import Reply, message_reply
from ..wire.request import ApiRequest, CheckedRequest
from .compose import compose_message
from .host import Host


async def finish(
    host: Host, checked: CheckedRequest, message: dict[str, Any], source: str
) -> Reply:
    """``message`` (its ``usage`` holding ``output_tokens``) as the reply: the input side of
    ``usage`` from the prompt-cache simulation, JSON or a stream as asked.  The prompt's
    prefixes count for the requests after this one."""
    cached = await host.cache_lookup(checked)
    usage = cached.usage()
    usage["output_tokens"] = message["usage"]["output_tokens"]
    usage["service_tier"] = "standard"
    message["usage"] = usage
    reply = message_reply(message, checked.stream, source, host.profile.ping)
    await cached.acommit()
    return reply


class SynthSource:
    """Composes a deterministic message for every request."""

    def __init__(self, host: Host) -> None:
        self.host = host

    async def reply(self, req: ApiRequest, checked: CheckedRequest) -> Reply:
        st = self.host
        counter = st.counter
        message = compose_message(
            checked.body,
            model=checked.model,
            max_tokens=checked.max_tokens,
            seed=st.settings.seed,
            count_output=counter.output,
            cut=counter.cut,
            output_schema=checked.output_schema,
            message_id_prefix=st.profile.message_id_prefix,
            tool_use_id_prefix=st.profile.tool_use_id_prefix,
        )
        return await finish(st, checked, message, "synth")
