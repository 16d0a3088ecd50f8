// The official TypeScript SDK (@anthropic-ai/sdk) through the five client scenarios.
//
//   node scenarios.mjs SCENARIO   (SCENARIO: plain | stream | tools | context | retry | structured)
//
// Reads the prompt from stdin (it can be longer than an environment variable may be), and
// MOCKSERVER_URL, the model, the tools and the fault header from the environment (the Python
// test passes them); prints one JSON object on stdout: what the client made of the replies.
import Anthropic from "@anthropic-ai/sdk";
import { jsonSchemaOutputFormat } from "@anthropic-ai/sdk/helpers/json-schema";

const env = process.env;
const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const PROMPT = Buffer.concat(chunks).toString("utf8");
const MODEL = env.MOCK_MODEL;
const FAULT_HEADER = env.MOCK_FAULT_HEADER;
const FAULT = env.MOCK_FAULT;

function client(extra = {}) {
  return new Anthropic({ baseURL: env.MOCKSERVER_URL, apiKey: env.MOCK_API_KEY, maxRetries: 2, ...extra });
}

const user = (text) => [{ role: "user", content: text }];
const textOf = (message) => message.content.filter((b) => b.type === "text").map((b) => b.text).join("");
// the same text as clientkit.tool_result_text
const toolResult = (name, input) =>
  `${name} result: ` +
  Object.entries(input)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join(",");

const scenarios = {
  async plain() {
    const message = await client().messages.create({ model: MODEL, max_tokens: 256, messages: user(PROMPT) });
    return { text: textOf(message), stop_reason: message.stop_reason, id: message.id };
  },

  async stream() {
    const stream = client().messages.stream({ model: MODEL, max_tokens: 256, messages: user(PROMPT) });
    const pieces = [];
    stream.on("text", (delta) => pieces.push(delta));
    const message = await stream.finalMessage();
    return { text: textOf(message), pieces, stop_reason: message.stop_reason };
  },

  async tools() {
    const tools = JSON.parse(env.MOCK_TOOLS);
    const messages = user(PROMPT);
    const c = client();
    const first = await c.messages.create({ model: MODEL, max_tokens: 512, messages, tools });
    const uses = first.content.filter((b) => b.type === "tool_use");
    messages.push({ role: "assistant", content: first.content });
    messages.push({
      role: "user",
      content: uses.map((u) => ({ type: "tool_result", tool_use_id: u.id, content: toolResult(u.name, u.input) })),
    });
    // the second turn streams, so both paths of the SDK see tool blocks
    const final = await c.messages.stream({ model: MODEL, max_tokens: 512, messages, tools }).finalMessage();
    return { calls: uses.map((u) => [u.name, u.input]), text: textOf(final), stop_reason: final.stop_reason };
  },

  async context() {
    try {
      await client().messages.create({ model: MODEL, max_tokens: 256, messages: user(PROMPT) });
      return { error: null };
    } catch (err) {
      return {
        error: {
          name: err.constructor.name,
          isBadRequest: err instanceof Anthropic.BadRequestError,
          status: err.status,
          message: err.error?.error?.message,
          requestID: err.requestID,
        },
      };
    }
  },

  async retry() {
    const c = client({ defaultHeaders: { [FAULT_HEADER]: FAULT } });
    const message = await c.messages.create({ model: MODEL, max_tokens: 256, messages: user(PROMPT) });
    return { text: textOf(message), stop_reason: message.stop_reason };
  },

  // messages.parse with the SDK's JSON Schema output format (output_config.format), and the
  // same through messages.stream
  async structured() {
    const format = jsonSchemaOutputFormat(JSON.parse(env.MOCK_SCHEMA));
    const c = client();
    const params = { model: MODEL, max_tokens: 512, messages: user(PROMPT), output_config: { format } };
    const parsed = await c.messages.parse(params);
    const streamed = await c.messages.stream(params).finalMessage();
    return { parsed: parsed.parsed_output, streamed: streamed.parsed_output ?? null };
  },
};

const name = process.argv[2];
if (!(name in scenarios)) {
  console.error(`unknown scenario ${name}; one of ${Object.keys(scenarios).join(", ")}`);
  process.exit(2);
}
const result = await scenarios[name]();
process.stdout.write(JSON.stringify(result) + "\n");
