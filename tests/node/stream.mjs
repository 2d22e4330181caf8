// Drives an assistants-compat server with the official openai Node SDK and prints one JSON
// object with what the SDK saw, for tests/runs/test_node_sdk.py to check.
//
//   node stream.mjs BASE_URL ASSISTANT_ID STREAM_THREAD_ID POLL_THREAD_ID [TOOL_THREAD_ID]
//
// Each argument may come from the environment instead: COMPAT_BASE_URL, ASSISTANT_ID,
// STREAM_THREAD_ID, POLL_THREAD_ID, TOOL_THREAD_ID. The API key is OPENAI_API_KEY (else "test").
//
// - stream: `runs.stream(...)` with `.on('textDelta', ...)`, then the final run and messages;
// - poll: `runs.createAndPoll(...)`;
// - tools (when a tool thread is given; its last message asks the builtin model for a call):
//   a stream that stops at requires_action, then `submitToolOutputsStream(...)`.
// Any error is printed as {"error": ...} with exit status 1.

import OpenAI from 'openai';

const [argBase, argAssistant, argStream, argPoll, argTool] = process.argv.slice(2);
const baseURL = argBase ?? process.env.COMPAT_BASE_URL;
const assistantId = argAssistant ?? process.env.ASSISTANT_ID;
const streamThreadId = argStream ?? process.env.STREAM_THREAD_ID;
const pollThreadId = argPoll ?? process.env.POLL_THREAD_ID;
const toolThreadId = argTool ?? process.env.TOOL_THREAD_ID;

if (!baseURL || !assistantId || !streamThreadId || !pollThreadId) {
  console.error('usage: node stream.mjs BASE_URL ASSISTANT_ID STREAM_THREAD_ID POLL_THREAD_ID [TOOL_THREAD_ID]');
  process.exit(2);
}

const client = new OpenAI({
  baseURL,
  apiKey: process.env.OPENAI_API_KEY ?? 'test',
  maxRetries: 0,
  timeout: 30_000,
});

function textOf(message) {
  return message.content
    .filter((part) => part.type === 'text')
    .map((part) => part.text.value)
    .join('');
}

async function streamRun() {
  let text = '';
  const events = [];
  const stream = client.beta.threads.runs
    .stream(streamThreadId, { assistant_id: assistantId })
    .on('textDelta', (delta) => {
      text += delta.value ?? '';
    })
    .on('event', (event) => {
      events.push(event.event);
    });
  const run = await stream.finalRun();
  const messages = await stream.finalMessages();
  return {
    text,
    events,
    run: { id: run.id, status: run.status, usage: run.usage },
    messages: messages.map((message) => ({ id: message.id, status: message.status, text: textOf(message) })),
  };
}

async function pollRun() {
  const run = await client.beta.threads.runs.createAndPoll(
    pollThreadId,
    { assistant_id: assistantId },
    { pollIntervalMs: 25 },
  );
  return { id: run.id, status: run.status, usage: run.usage };
}

async function toolRun() {
  const calls = [];
  const first = client.beta.threads.runs
    .stream(toolThreadId, { assistant_id: assistantId })
    .on('toolCallDone', (call) => {
      calls.push({ id: call.id, type: call.type, name: call.function?.name, arguments: call.function?.arguments });
    });
  const waiting = await first.finalRun();
  const pending = waiting.required_action?.submit_tool_outputs.tool_calls ?? [];
  let text = '';
  const resumed = client.beta.threads.runs
    .submitToolOutputsStream(waiting.id, {
      thread_id: toolThreadId,
      tool_outputs: pending.map((call) => ({ tool_call_id: call.id, output: `out:${call.function.name}` })),
    })
    .on('textDelta', (delta) => {
      text += delta.value ?? '';
    });
  const done = await resumed.finalRun();
  return {
    waiting: { id: waiting.id, status: waiting.status },
    pending: pending.map((call) => ({ id: call.id, name: call.function.name, arguments: call.function.arguments })),
    streamedCalls: calls,
    text,
    done: { id: done.id, status: done.status },
  };
}

try {
  const result = { stream: await streamRun(), poll: await pollRun() };
  if (toolThreadId) {
    result.tools = await toolRun();
  }
  console.log(JSON.stringify(result));
} catch (error) {
  console.log(JSON.stringify({ error: { name: error?.name, message: String(error?.message ?? error), stack: error?.stack } }));
  process.exit(1);
}
