"""A synthesized reply's text is counted by its pieces (``SplitText``): the lead, then each
word and full stop from the cached encodings.  That is exact only because the tokenizer splits
the whole text at those points anyway; these tests hold it to the tokenizer itself, for any
prompt the lead may echo."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings, strategies as st

from mockserver.accounting.tokens import SplitText, TokenCounter, get_tokenizer
from mockserver.sources.compose import compose_message, compose_text, make_id

COUNTER = TokenCounter()


def whole(text: str) -> int:
    """What the tokenizer makes of the text as one string."""
    return len(get_tokenizer().encode(str(text), add_special_tokens=False).ids)


# prompts with what could blur a boundary: digits, CJK, punctuation, marks, odd spaces
_ODD = ["é", "e\u0301", "中文", "カ", "\u200b", "\u00a0", "\t", "\n", "\u3000", "😀", "\u0085"]
_ALPHABET = st.sampled_from([*"abcXYZ019 .,?!-'\"()[]{}@#", *_ODD, "\u1680", "٣", "x\u0300"])


@settings(max_examples=400)
@given(
    prompt=st.one_of(st.text(max_size=80), st.lists(_ALPHABET, max_size=40).map("".join)),
    seed=st.integers(0, 2**32),
    only_results=st.booleans(),
)
def test_a_composed_text_counts_as_the_tokenizer_counts_it_whole(
    prompt: str, seed: int, only_results: bool
) -> None:
    text = compose_text(random.Random(seed), prompt, only_results)
    assert isinstance(text, SplitText) and "".join(text.pieces) == text
    assert COUNTER.output([{"type": "text", "text": text}]) == whole(text)


@pytest.mark.parametrize("i", range(50))
def test_a_synthesized_message_reports_the_tokens_of_its_text(i: int) -> None:
    body = {
        "model": "deepseek-v3-anthropic",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": f"Question {i}: 中文 and e\u0301 — what?"}],
    }
    msg = compose_message(
        body, model="m", max_tokens=4096, seed=i, count_output=COUNTER.output, cut=COUNTER.cut
    )
    (block,) = msg["content"]
    assert msg["usage"]["output_tokens"] == whole(block["text"])


def test_a_cut_text_is_counted_whole() -> None:
    """A slice (a stop sequence's cut, a max_tokens cut) is a plain ``str``: counted whole."""
    text = compose_text(random.Random(1), "hello there", False)
    cut = text[: len(text) // 2]
    assert type(cut) is str
    assert COUNTER.output([{"type": "text", "text": cut}]) == whole(cut)


def test_ids_are_deterministic_base62() -> None:
    a, b = make_id("msg_", random.Random(7)), make_id("msg_", random.Random(7))
    assert a == b and a.startswith("msg_01") and len(a) == len("msg_") + 24
    assert a[6:].isalnum() and make_id("msg_", random.Random(8)) != a
    assert len({make_id("", random.Random(i)) for i in range(2000)}) == 2000


def test_the_message_holds_plain_text() -> None:
    """Counting is what a ``SplitText`` is for: the message holds a plain ``str`` (anything
    that writes it, YAML included, sees an ordinary string)."""
    import yaml

    body = {"model": "m", "max_tokens": 512, "messages": [{"role": "user", "content": "hi"}]}
    msg = compose_message(
        body, model="m", max_tokens=512, seed=3, count_output=COUNTER.output, cut=COUNTER.cut
    )
    (block,) = msg["content"]
    assert type(block["text"]) is str
    assert yaml.safe_dump(msg)
