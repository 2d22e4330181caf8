// Runs an assistant with the file_search tool through the official openai Node SDK's helpers and
// prints one JSON object with what the SDK saw, for tests/runs/test_file_search_tool.py.
//
//   node file_search.mjs BASE_URL ASSISTANT_ID POLL_THREAD_ID STREAM_THREAD_ID
//
// - poll: `runs.createAndPoll(...)`, then the reply and the tool step (steps listed without and
//   with `include`);
// - stream: `runs.stream(...)` with `include`, recording `toolCallCreated`, the annotations of
//   each `textDelta`, the snapshot they build and `runStepDone`, then `finalMessages()`.
// Each annotation is reported with `sliced`: the reply's text between its indices.
// Any error is printed as {"error": ...} with exit status 1.

import OpenAI from 'openai';

const CONTENT = 'step_details.tool_calls[*].file_search.results[*].content';
const [baseURL, assistantId, pollThreadId, streamThreadId] = process.argv.slice(2);
if (!baseURL || !assistantId || !pollThreadId || !streamThreadId) {
  console.error('usage: node file_search.mjs BASE_URL ASSISTANT_ID POLL_THREAD_ID STREAM_THREAD_ID');
  process.exit(2);
}

const client = new OpenAI({
  baseURL,
  apiKey: process.env.OPENAI_API_KEY ?? 'test',
  maxRetries: 0,
  timeout: 30_000,
});
const runs = client.beta.threads.runs;

function reply(message) {
  const text = message.content.find((part) => part.type === 'text').text;
  return {
    text: text.value,
    annotations: text.annotations.map((a) => ({ ...a, sliced: text.value.slice(a.start_index, a.end_index) })),
  };
}

function searchCalls(step) {
  return step.step_details.tool_calls.map((call) => ({ type: call.type, id: call.id, file_search: call.file_search }));
}

async function poll() {
  console.error('poll: createAndPoll');
  const run = await runs.createAndPoll(pollThreadId, { assistant_id: assistantId }, { pollIntervalMs: 50 });
  const messages = await client.beta.threads.messages.list(pollThreadId, { run_id: run.id });
  const steps = await runs.steps.list(run.id, { thread_id: pollThreadId, order: 'asc' });
  const included = await runs.steps.list(run.id, { thread_id: pollThreadId, order: 'asc', include: [CONTENT] });
  return {
    status: run.status,
    reply: reply(messages.data[0]),
    calls: searchCalls(steps.data[0]),
    includedCalls: searchCalls(included.data[0]),
  };
}

async function stream() {
  console.error('stream: runs.stream');
  const report = { createdCalls: [], deltaAnnotations: [], doneSteps: [], snapshot: null };
  const stream = runs
    .stream(streamThreadId, { assistant_id: assistantId, include: [CONTENT] })
    .on('toolCallCreated', (call) => report.createdCalls.push({ type: call.type, id: call.id, file_search: call.file_search }))
    .on('textDelta', (delta, snapshot) => {
      report.deltaAnnotations.push(...(delta.annotations ?? []));
      report.snapshot = {
        text: snapshot.value,
        annotations: snapshot.annotations.map((a) => ({ ...a, sliced: snapshot.value.slice(a.start_index, a.end_index) })),
      };
    })
    .on('runStepDone', (step) => {
      report.doneSteps.push({ type: step.type, status: step.status, calls: step.type === 'tool_calls' ? searchCalls(step) : [] });
    });
  const run = await stream.finalRun();
  const [message] = await stream.finalMessages();
  return { status: run.status, final: reply(message), ...report };
}

try {
  console.log(JSON.stringify({ poll: await poll(), stream: await stream() }));
} catch (error) {
  console.log(JSON.stringify({ error: { name: error?.name, message: String(error?.message ?? error), stack: error?.stack } }));
  process.exit(1);
}
