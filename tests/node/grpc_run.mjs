// Drives the assistants-compat core over gRPC from Node, with @grpc/grpc-js and the .proto files
// of proto/ loaded by @grpc/proto-loader, and prints one JSON object with what it saw, for
// tests/runs/test_node_grpc.py to check: the contract works outside Python.
//
//   node grpc_run.mjs TARGET ASSISTANT_ID THREAD_ID [batches]
//
// TARGET is the core's host:port. COMPAT_API_KEY, when set, goes out as `authorization: Bearer
// KEY` metadata on every call. With `batches`, the streamed run asks for `accept_event_batches`
// and the batches are unpacked here.
//
// - stream: `CreateRunStream` of ASSISTANT_ID on THREAD_ID, read to its end;
// - replay: `WatchRun` of that run from `after_sequence` 0 (every event again);
// - state: `WatchRun` of that run with no position (its current state, then `done`).
// Events are listed by their SSE names. A failed call prints {"error": {code, status, details}}
// and exits with status 1.

import { fileURLToPath } from 'node:url';

import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const PROTO_ROOT = fileURLToPath(new URL('../../proto', import.meta.url));
const DEADLINE_MS = 30_000;
// SSE event names are the RunEvent field names with these prefixes' underscores made dots;
// the rest of a name keeps its own (`thread_run_in_progress` is `thread.run.in_progress`).
const EVENT_PREFIXES = ['thread_run_step_', 'thread_message_', 'thread_run_', 'thread_'];

const [target, assistantId, threadId, mode] = process.argv.slice(2);
if (!target || !assistantId || !threadId || (mode !== undefined && mode !== 'batches')) {
  console.error('usage: node grpc_run.mjs TARGET ASSISTANT_ID THREAD_ID [batches]');
  process.exit(2);
}

// Field names as written in the .proto files, enums by name, int64 as numbers (sequences and
// timestamps stay far below 2^53), and the name of the field each oneof holds in the oneof's
// own name (`event.event` is `thread_run_created`, say).
const definition = protoLoader.loadSync('compat_core/v1/runs.proto', {
  includeDirs: [PROTO_ROOT],
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
});
const api = grpc.loadPackageDefinition(definition).compat_core.v1;
const runs = new api.RunsService(target, grpc.credentials.createInsecure());

function callMetadata() {
  const metadata = new grpc.Metadata();
  if (process.env.COMPAT_API_KEY) {
    metadata.set('authorization', `Bearer ${process.env.COMPAT_API_KEY}`);
  }
  return metadata;
}

function options() {
  return { deadline: Date.now() + DEADLINE_MS };
}

function eventName(field) {
  const prefix = EVENT_PREFIXES.find((candidate) => field.startsWith(candidate));
  return prefix === undefined ? field : prefix.replaceAll('_', '.') + field.slice(prefix.length);
}

// Reads a stream to its end: its messages, the events they carry (batches unpacked, each
// checked), and the text of the message deltas in order.
async function read(call) {
  let messages = 0;
  let batches = 0;
  const events = [];
  for await (const message of call) {
    messages += 1;
    if (message.event === 'batch') {
      batches += 1;
      const inner = message.batch.events;
      if (inner.some((event) => event.event === 'batch')) {
        throw new Error('a batch holds a batch');
      }
      if (message.sequence !== inner.at(-1).sequence) {
        throw new Error(`batch sequence ${message.sequence} is not its last event's`);
      }
      events.push(...inner);
    } else {
      events.push(message);
    }
  }
  const text = events
    .filter((event) => event.event === 'thread_message_delta')
    .flatMap((event) => event.thread_message_delta.content)
    .filter((piece) => piece.part.part === 'text')
    .map((piece) => piece.part.text.value)
    .join('');
  return {
    messages,
    batches,
    events: events.map((event) => ({ name: eventName(event.event), sequence: event.sequence })),
    text,
    raw: events,
  };
}

function summary({ raw, ...rest }) {
  return rest;
}

function runOf(events, field) {
  const event = events.find((candidate) => candidate.event === field);
  if (event === undefined) {
    throw new Error(`no ${field} event`);
  }
  return event[field];
}

try {
  const stream = await read(
    runs.CreateRunStream(
      { thread_id: threadId, assistant_id: assistantId, accept_event_batches: mode === 'batches' },
      callMetadata(),
      options(),
    ),
  );
  const created = runOf(stream.raw, 'thread_run_created');
  const final = stream.raw.at(-2);
  const finalRun = final?.[final.event];
  const replay = await read(runs.WatchRun({ run_id: created.id, after_sequence: 0 }, callMetadata(), options()));
  const state = await read(runs.WatchRun({ run_id: created.id }, callMetadata(), options()));
  console.log(
    JSON.stringify({
      run: { id: created.id, created: created.status, final: finalRun?.status, usage: finalRun?.usage },
      stream: summary(stream),
      replay: summary(replay),
      state: summary(state),
    }),
  );
} catch (error) {
  const code = error?.code;
  console.log(
    JSON.stringify({
      error: {
        code,
        status: typeof code === 'number' ? grpc.status[code] : undefined,
        details: error?.details ?? String(error?.message ?? error),
      },
    }),
  );
  process.exitCode = 1;
} finally {
  runs.close();
}
