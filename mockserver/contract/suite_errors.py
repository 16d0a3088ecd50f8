"""The live suite's error cases: each asks for an error the real endpoint gives and checks
its status, type, envelope (dialect) and wording."""

from __future__ import annotations

from ..wire import protocol as p
from .suite_cases import WEATHER, Cases
from .suite_client import Failed

#: a key no endpoint has issued
BAD_KEY = "sk-invalid-conformance-key"


class ErrorCases(Cases):
    """Each method named ``case_*`` is one case, run in definition order."""

    # --- cases: errors -----------------------------------------------------------------
    def case_error_no_key(self) -> None:
        resp = self.c.send("POST", p.PATH_MESSAGES, self.body(), self.c.headers(key=False))
        self.expect_error(resp, 401, p.AUTHENTICATION)

    def case_error_bad_key(self) -> None:
        h = self.c.headers()
        h[p.H_API_KEY] = BAD_KEY
        resp = self.c.send("POST", p.PATH_MESSAGES, self.body(), h)
        if resp.status == 200:
            raise Failed(
                f"HTTP 200, expected 401: the endpoint accepted the made-up key {BAD_KEY!r}. "
                "A mockserver started without --api-key accepts every key: start it with "
                "`mockserver serve --api-key KEY` and pass the same `--api-key KEY` here"
            )
        self.expect_error(resp, 401, p.AUTHENTICATION)

    def case_error_no_version(self) -> None:
        resp = self.c.send("POST", p.PATH_MESSAGES, self.body(), self.c.headers(version=False))
        self.expect_error(resp, 400, p.INVALID_REQUEST, "anthropic-version")

    def case_error_missing_max_tokens(self) -> None:
        body = self.body()
        del body["max_tokens"]
        self.expect_error(
            self.c.send("POST", p.PATH_MESSAGES, body), 400, p.INVALID_REQUEST, "max_tokens"
        )

    def case_error_missing_messages(self) -> None:
        body = self.body()
        del body["messages"]
        self.expect_error(
            self.c.send("POST", p.PATH_MESSAGES, body), 400, p.INVALID_REQUEST, "messages"
        )

    def case_error_bad_role(self) -> None:
        body = self.body()
        body["messages"][0]["role"] = "robot"
        self.expect_error(
            self.c.send("POST", p.PATH_MESSAGES, body), 400, p.INVALID_REQUEST, "role"
        )

    def case_error_unknown_model(self) -> None:
        body = self.body(model="no-such-model-xyz")
        self.expect_error(
            self.c.send("POST", p.PATH_MESSAGES, body), 404, p.NOT_FOUND, "no-such-model-xyz"
        )

    def case_error_max_tokens_over_limit(self) -> None:
        body = self.body(max_tokens=1_000_000)
        self.expect_error(
            self.c.send("POST", p.PATH_MESSAGES, body), 400, p.INVALID_REQUEST, "max_tokens"
        )

    def case_error_context_limit(self) -> None:
        text = " ".join(f"token{i}" for i in range(120_000))
        resp = self.c.send("POST", p.PATH_MESSAGES, self.body(text))
        dialect = self.expect_error(resp, 400, p.INVALID_REQUEST)
        message = resp.json()["error"]["message"]
        wanted = "prompt is too long" if dialect == "anthropic" else "maximum context length"
        if wanted not in message:
            raise Failed(f"context-limit message {message[:100]!r} lacks {wanted!r}")

    def case_error_image_block(self) -> None:
        image = {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
        }
        body = self.body([image, {"type": "text", "text": "What is this?"}])
        self.expect_error(self.c.send("POST", p.PATH_MESSAGES, body), 400, p.INVALID_REQUEST)

    def case_error_bad_tool_name(self) -> None:
        body = self.body(tools=[{**WEATHER, "name": "bad name!"}])
        self.expect_error(
            self.c.send("POST", p.PATH_MESSAGES, body), 400, p.INVALID_REQUEST, "name"
        )

    def case_error_orphan_tool_result(self) -> None:
        body = self.body([{"type": "tool_result", "tool_use_id": "toolu_01Nope", "content": "x"}])
        self.expect_error(
            self.c.send("POST", p.PATH_MESSAGES, body), 400, p.INVALID_REQUEST, "tool_use"
        )

    def case_error_body_not_json(self) -> None:
        resp = self.c.send("POST", p.PATH_MESSAGES, raw=b"{this is not json")
        self.expect_error(resp, 400, p.INVALID_REQUEST)

    def case_error_unknown_path(self) -> None:
        resp = self.c.send("POST", "/v1/chat/completions", {"model": self.model, "messages": []})
        self.expect_error(resp, 404, p.NOT_FOUND)
