// Streams runs with the official openai Node SDK, listening to every event AssistantStream
// emits, and prints one JSON object with what each stream reported, for
// tests/runs/test_stream_callbacks.py to check against OpenAI's event sequence.
//
//   node callbacks.mjs BASE_URL PLAN_JSON
//
// PLAN_JSON is a list of {"name", "threadId", "assistantId"} streams, each optionally with
//   "cancelAtText": cancel the run once the text streamed so far equals this;
//   "submitOutputs": when the run stops for tool outputs, answer each call NAME with
//                    "out:NAME" through submitToolOutputsStream, and report that stream too.
// The output maps each name to {"stream": REPORT} (and "submitted": REPORT), where REPORT has
// the count of every listener's calls and what they were given. Any error is printed as
// {"error": ...} with exit status 1.

import OpenAI from 'openai';

const LISTENED = [
  'connect',
  'run',
  'textCreated',
  'textDelta',
  'textDone',
  'imageFileDone',
  'messageCreated',
  'messageDelta',
  'messageDone',
  'runStepCreated',
  'runStepDelta',
  'runStepDone',
  'toolCallCreated',
  'toolCallDelta',
  'toolCallDone',
  'end',
  'error',
  'abort',
];

const [baseURL, planJson] = process.argv.slice(2);
if (!baseURL || !planJson) {
  console.error('usage: node callbacks.mjs BASE_URL PLAN_JSON');
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

// Listens to everything `stream` emits; `onText(snapshotText)` runs after each text delta.
// Resolves to the report once the stream ended.
async function observe(stream, onText) {
  const report = {
    counts: Object.fromEntries(LISTENED.map((name) => [name, 0])),
    events: {},
    text: '',
    createdTexts: [],
    doneTexts: [],
    doneMessages: [],
    createdArguments: {},
    deltaArguments: {},
    doneCalls: [],
    doneSteps: [],
    run: null,
  };
  for (const name of LISTENED) {
    stream.on(name, () => {
      report.counts[name] += 1;
    });
  }
  stream
    .on('event', (event) => {
      report.events[event.event] = (report.events[event.event] ?? 0) + 1;
    })
    .on('textCreated', (text) => report.createdTexts.push(text.value))
    .on('textDelta', (delta, snapshot) => {
      report.text += delta.value ?? '';
      onText?.(snapshot.value);
    })
    .on('textDone', (text) => report.doneTexts.push(text.value))
    .on('messageDone', (message) => report.doneMessages.push([message.id, message.status, textOf(message)]))
    .on('toolCallCreated', (call) => {
      report.createdArguments[call.id] = call.function?.arguments ?? null;
      report.deltaArguments[call.id] = '';
    })
    .on('toolCallDelta', (delta, snapshot) => {
      report.deltaArguments[snapshot.id] += delta.function?.arguments ?? '';
    })
    .on('toolCallDone', (call) => report.doneCalls.push([call.id, call.function?.name, call.function?.arguments]))
    .on('runStepDone', (step) => report.doneSteps.push([step.type, step.status]));
  const run = await stream.finalRun();
  report.run = { id: run.id, status: run.status };
  return [report, run];
}

async function streamOne(entry) {
  // Progress on stderr: what a test that times out shows of where the script waited.
  console.error(`${entry.name}: streaming`);
  const runs = client.beta.threads.runs;
  let cancelling = null;
  const stream = runs.stream(entry.threadId, { assistant_id: entry.assistantId });
  const onText = (text) => {
    if (entry.cancelAtText !== undefined && text === entry.cancelAtText && cancelling === null) {
      console.error(`${entry.name}: cancelling at ${JSON.stringify(text)}`);
      cancelling = runs.cancel(stream.currentRun().id, { thread_id: entry.threadId });
    }
  };
  const [report, run] = await observe(stream, onText);
  const result = { stream: report };
  if (cancelling !== null) {
    result.cancelAnswer = (await cancelling).status;
  }
  console.error(`${entry.name}: stream ended, run ${run.status}`);
  if (entry.submitOutputs && run.status === 'requires_action') {
    const calls = run.required_action.submit_tool_outputs.tool_calls;
    const resumed = runs.submitToolOutputsStream(run.id, {
      thread_id: entry.threadId,
      tool_outputs: calls.map((call) => ({ tool_call_id: call.id, output: `out:${call.function.name}` })),
    });
    [result.submitted] = await observe(resumed);
  }
  return result;
}

try {
  const output = {};
  for (const entry of JSON.parse(planJson)) {
    output[entry.name] = await streamOne(entry);
  }
  console.log(JSON.stringify(output));
} catch (error) {
  console.log(JSON.stringify({ error: { name: error?.name, message: String(error?.message ?? error), stack: error?.stack } }));
  process.exit(1);
}
