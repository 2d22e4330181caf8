// Runs an assistant with the code_interpreter tool through the official openai Node SDK's helpers
// and prints one JSON object with what the SDK saw, for tests/runs/test_code_interpreter_node.py.
//
//   node code_interpreter.mjs BASE_URL ASSISTANT_ID FILE_ID POLL_ASK STREAM_ASK AGAIN_ASK
//
// - poll: a thread whose message attaches FILE_ID for code_interpreter and says POLL_ASK;
//   `runs.createAndPoll(...)`, then the tool step, the reply, and the bytes of every file the
//   run made (the image output and each `file_path` annotation), downloaded with
//   `files.content(...)`; then AGAIN_ASK in the same thread, another `createAndPoll`, and the
//   logs of its call (the session's state is kept between runs of a thread);
// - stream: another thread saying STREAM_ASK, `runs.stream(...)`, recording `toolCallCreated`,
//   the `code_interpreter` pieces of each `toolCallDelta`, `imageFileDone` and `textDelta`,
//   then the stored step.
// Any error is printed as {"error": ...} with exit status 1.

import OpenAI from 'openai';

const [baseURL, assistantId, fileId, pollAsk, streamAsk, againAsk] = process.argv.slice(2);
if (!baseURL || !assistantId || !fileId || !pollAsk || !streamAsk || !againAsk) {
  console.error('usage: node code_interpreter.mjs BASE_URL ASSISTANT_ID FILE_ID POLL_ASK STREAM_ASK AGAIN_ASK');
  process.exit(2);
}

const client = new OpenAI({
  baseURL,
  apiKey: process.env.OPENAI_API_KEY ?? 'test',
  maxRetries: 0,
  timeout: 60_000,
});
const runs = client.beta.threads.runs;

async function download(id, asText = false) {
  const response = await client.files.content(id);
  const bytes = Buffer.from(await response.arrayBuffer());
  const got = { id, size: bytes.length, head: bytes.subarray(0, 8).toString('hex') };
  if (asText) got.text = bytes.toString('utf8');
  return got;
}

async function poll() {
  console.error('poll: createAndPoll');
  const thread = await client.beta.threads.create({
    messages: [{ role: 'user', content: pollAsk, attachments: [{ file_id: fileId, tools: [{ type: 'code_interpreter' }] }] }],
  });
  const run = await runs.createAndPoll(thread.id, { assistant_id: assistantId }, { pollIntervalMs: 50 });
  const steps = await runs.steps.list(run.id, { thread_id: thread.id, order: 'asc' });
  const messages = await client.beta.threads.messages.list(thread.id, { run_id: run.id });
  const call = steps.data[0].step_details.tool_calls[0];
  const reply = messages.data[0];
  const images = call.code_interpreter.outputs.filter((o) => o.type === 'image').map((o) => o.image.file_id);
  const text = reply.content.find((part) => part.type === 'text').text;
  const links = text.annotations.filter((a) => a.type === 'file_path');
  await client.beta.threads.messages.create(thread.id, { role: 'user', content: againAsk });
  const again = await runs.createAndPoll(thread.id, { assistant_id: assistantId }, { pollIntervalMs: 50 });
  const againSteps = await runs.steps.list(again.id, { thread_id: thread.id, order: 'asc' });
  const againOutputs = againSteps.data[0].step_details.tool_calls[0].code_interpreter.outputs;
  return {
    againStatus: again.status,
    againLogs: againOutputs.filter((o) => o.type === 'logs').map((o) => o.logs).join(''),
    status: run.status,
    lastError: run.last_error,
    call,
    contentTypes: reply.content.map((part) => part.type),
    imageParts: reply.content.filter((part) => part.type === 'image_file').map((part) => part.image_file.file_id),
    images: await Promise.all(images.map((id) => download(id))),
    links: await Promise.all(
      links.map(async (a) => ({ text: a.text, sliced: text.value.slice(a.start_index, a.end_index), file: await download(a.file_path.file_id, true) })),
    ),
  };
}

async function stream() {
  console.error('stream: runs.stream');
  const thread = await client.beta.threads.create({ messages: [{ role: 'user', content: streamAsk }] });
  const report = { created: [], inputs: [], logs: [], imageOutputs: [], imagesDone: [], text: '' };
  const stream = runs
    .stream(thread.id, { assistant_id: assistantId })
    .on('toolCallCreated', (call) => report.created.push(call.type))
    .on('toolCallDelta', (delta) => {
      const code = delta.code_interpreter;
      if (!code) return;
      if (code.input) report.inputs.push(code.input);
      for (const output of code.outputs ?? []) {
        if (output.type === 'logs') report.logs.push(output.logs);
        if (output.type === 'image') report.imageOutputs.push(output.image.file_id);
      }
    })
    .on('imageFileDone', (image) => report.imagesDone.push(image.file_id))
    .on('textDelta', (delta) => {
      report.text += delta.value ?? '';
    });
  const run = await stream.finalRun();
  const steps = await runs.steps.list(run.id, { thread_id: thread.id, order: 'asc' });
  report.status = run.status;
  report.stored = steps.data[0].step_details.tool_calls[0].code_interpreter;
  return report;
}

try {
  console.log(JSON.stringify({ poll: await poll(), stream: await stream() }));
} catch (error) {
  console.log(JSON.stringify({ error: String(error?.stack ?? error) }));
  process.exit(1);
}
