"""Wire vocabulary of the Anthropic Messages protocol, defined once.

Every event, block, delta, stop-reason, error-type and header name the rest of the
package uses lives here, so that a typo is an import error rather than a silent miss.
"""

from __future__ import annotations

from typing import Final, Literal

# --- routes -----------------------------------------------------------------------------
PATH_MESSAGES: Final = "/v1/messages"
PATH_COUNT_TOKENS: Final = "/v1/messages/count_tokens"
PATH_MODELS: Final = "/v1/models"
ADMIN_PREFIX: Final = "/_mockserver"

# --- stream events ----------------------------------------------------------------------
EventName = Literal[
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "ping",
    "error",
]
MESSAGE_START: Final = "message_start"
CONTENT_BLOCK_START: Final = "content_block_start"
CONTENT_BLOCK_DELTA: Final = "content_block_delta"
CONTENT_BLOCK_STOP: Final = "content_block_stop"
MESSAGE_DELTA: Final = "message_delta"
MESSAGE_STOP: Final = "message_stop"
PING: Final = "ping"
ERROR: Final = "error"
EVENT_NAMES: Final[frozenset[str]] = frozenset(
    {
        MESSAGE_START,
        CONTENT_BLOCK_START,
        CONTENT_BLOCK_DELTA,
        CONTENT_BLOCK_STOP,
        MESSAGE_DELTA,
        MESSAGE_STOP,
        PING,
        ERROR,
    }
)

# --- content blocks ---------------------------------------------------------------------
BLOCK_TEXT: Final = "text"
BLOCK_TOOL_USE: Final = "tool_use"
BLOCK_TOOL_RESULT: Final = "tool_result"
BLOCK_THINKING: Final = "thinking"
BLOCK_REDACTED_THINKING: Final = "redacted_thinking"
BLOCK_SERVER_TOOL_USE: Final = "server_tool_use"
BLOCK_IMAGE: Final = "image"
BLOCK_DOCUMENT: Final = "document"
BLOCK_SEARCH_RESULT: Final = "search_result"
#: a tool_result's reference to a deferred tool a tool search loaded (Claude Code's ToolSearch)
BLOCK_TOOL_REFERENCE: Final = "tool_reference"
#: request blocks the alias cannot read (no vision, no documents)
MEDIA_BLOCKS: Final[frozenset[str]] = frozenset({BLOCK_IMAGE, BLOCK_DOCUMENT, BLOCK_SEARCH_RESULT})

# --- deltas -----------------------------------------------------------------------------
DELTA_TEXT: Final = "text_delta"
DELTA_INPUT_JSON: Final = "input_json_delta"
DELTA_THINKING: Final = "thinking_delta"
DELTA_SIGNATURE: Final = "signature_delta"
DELTA_CITATIONS: Final = "citations_delta"
#: which delta types may appear inside which (known) block type
DELTAS_FOR_BLOCK: Final[dict[str, frozenset[str]]] = {
    BLOCK_TEXT: frozenset({DELTA_TEXT, DELTA_CITATIONS}),
    BLOCK_TOOL_USE: frozenset({DELTA_INPUT_JSON}),
    BLOCK_SERVER_TOOL_USE: frozenset({DELTA_INPUT_JSON}),
    "mcp_tool_use": frozenset({DELTA_INPUT_JSON}),
    BLOCK_THINKING: frozenset({DELTA_THINKING, DELTA_SIGNATURE}),
    BLOCK_REDACTED_THINKING: frozenset(),
}

# --- roles and stop reasons -------------------------------------------------------------
ROLE_USER: Final = "user"
ROLE_ASSISTANT: Final = "assistant"
ROLE_SYSTEM: Final = "system"

StopReason = Literal[
    "end_turn",
    "max_tokens",
    "stop_sequence",
    "tool_use",
    "pause_turn",
    "refusal",
    "model_context_window_exceeded",
]
STOP_END_TURN: Final = "end_turn"
STOP_MAX_TOKENS: Final = "max_tokens"
STOP_SEQUENCE: Final = "stop_sequence"
STOP_TOOL_USE: Final = "tool_use"
STOP_REASONS: Final[frozenset[str]] = frozenset(
    {
        STOP_END_TURN,
        STOP_MAX_TOKENS,
        STOP_SEQUENCE,
        STOP_TOOL_USE,
        "pause_turn",
        "refusal",
        "model_context_window_exceeded",
    }
)

# --- errors -----------------------------------------------------------------------------
ErrorType = Literal[
    "invalid_request_error",
    "authentication_error",
    "billing_error",
    "permission_error",
    "not_found_error",
    "request_too_large",
    "rate_limit_error",
    "api_error",
    "timeout_error",
    "overloaded_error",
]
INVALID_REQUEST: Final = "invalid_request_error"
AUTHENTICATION: Final = "authentication_error"
PERMISSION: Final = "permission_error"
NOT_FOUND: Final = "not_found_error"
REQUEST_TOO_LARGE: Final = "request_too_large"
RATE_LIMIT: Final = "rate_limit_error"
API_ERROR: Final = "api_error"
TIMEOUT: Final = "timeout_error"
OVERLOADED: Final = "overloaded_error"

#: HTTP status -> error type of the Anthropic envelope
ERROR_TYPE_FOR_STATUS: Final[dict[int, str]] = {
    400: INVALID_REQUEST,
    401: AUTHENTICATION,
    402: "billing_error",
    403: PERMISSION,
    404: NOT_FOUND,
    405: NOT_FOUND,
    413: REQUEST_TOO_LARGE,
    429: RATE_LIMIT,
    500: API_ERROR,
    503: OVERLOADED,
    504: TIMEOUT,
    529: OVERLOADED,
}
STATUS_FOR_ERROR_TYPE: Final[dict[str, int]] = {
    INVALID_REQUEST: 400,
    AUTHENTICATION: 401,
    "billing_error": 402,
    PERMISSION: 403,
    NOT_FOUND: 404,
    REQUEST_TOO_LARGE: 413,
    RATE_LIMIT: 429,
    API_ERROR: 500,
    TIMEOUT: 504,
    OVERLOADED: 529,
}
ERROR_TYPES: Final[frozenset[str]] = frozenset(STATUS_FOR_ERROR_TYPE)

# --- headers (lower case) ---------------------------------------------------------------
H_API_KEY: Final = "x-api-key"
H_AUTHORIZATION: Final = "authorization"
H_VERSION: Final = "anthropic-version"
H_BETA: Final = "anthropic-beta"
H_REQUEST_ID: Final = "request-id"
H_CONTENT_TYPE: Final = "content-type"
H_RETRY_AFTER: Final = "retry-after"
H_RETRY_AFTER_MS: Final = "retry-after-ms"
H_SHOULD_RETRY: Final = "x-should-retry"
H_RETRY_COUNT: Final = "x-stainless-retry-count"
H_FAULT: Final = "x-mockserver-fault"
H_COST: Final = "x-mockserver-cost-usd"
H_SOURCE: Final = "x-mockserver-source"
H_ADMIN_TOKEN: Final = "x-mockserver-admin-token"
#: the cassette a request is replayed from / recorded into (a name relative to --cassettes)
H_CASSETTE: Final = "x-mockserver-cassette"
RATELIMIT_PREFIX: Final = "anthropic-ratelimit-"
SECRET_HEADERS: Final[frozenset[str]] = frozenset(
    {H_API_KEY, H_AUTHORIZATION, "cookie", "set-cookie", "proxy-authorization", H_ADMIN_TOKEN}
)

CT_JSON: Final = "application/json"
CT_SSE: Final = "text/event-stream; charset=utf-8"

# --- ids --------------------------------------------------------------------------------
MESSAGE_ID_PREFIX: Final = "msg_"
TOOL_USE_ID_PREFIX: Final = "toolu_"
REQUEST_ID_PREFIX: Final = "req_"

# --- usage and prompt caching -----------------------------------------------------------
USAGE_INPUT: Final = "input_tokens"
USAGE_OUTPUT: Final = "output_tokens"
USAGE_CACHE_READ: Final = "cache_read_input_tokens"
USAGE_CACHE_CREATION: Final = "cache_creation_input_tokens"
#: ``usage.cache_creation``: the write tokens by TTL
USAGE_CACHE_BREAKDOWN: Final = "cache_creation"
USAGE_EPHEMERAL_5M: Final = "ephemeral_5m_input_tokens"
USAGE_EPHEMERAL_1H: Final = "ephemeral_1h_input_tokens"
CACHE_CONTROL: Final = "cache_control"
CACHE_EPHEMERAL: Final = "ephemeral"
CACHE_TTL_5M: Final = "5m"
CACHE_TTL_1H: Final = "1h"
