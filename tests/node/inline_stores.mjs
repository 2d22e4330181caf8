// Creates a thread whose first message attaches a file for file_search, then runs it with an
// additional message that attaches another, with the official openai Node SDK, and prints one
// JSON object with what the SDK saw, for tests/test_inline_vector_stores.py to check.
//
//   node inline_stores.mjs BASE_URL
//
// The API key is OPENAI_API_KEY (else "test"). It uploads a small markdown file, creates the
// thread with `beta.threads.create({messages: [{…, attachments}]})`, waits for the file with
// `vectorStores.files.poll`, and searches the thread's store. Then `runs.createAndPoll` runs a
// `builtin/echo` assistant with file_search on the thread, its additional message attaching a
// second file and asking echo to search for it. It prints {threadId, fileId, vectorStoreIds,
// store: {expires_after, …}, fileStatus, found, run: {fileId, status, found, storeFileIds}},
// where `run.found` names the files of the run's file_search results.
// Any error is printed as {"error": ...} with exit status 1.

import OpenAI, { toFile } from 'openai';

const [baseURL] = process.argv.slice(2);
if (!baseURL) {
  console.error('usage: node inline_stores.mjs BASE_URL');
  process.exit(2);
}

const client = new OpenAI({
  baseURL,
  apiKey: process.env.OPENAI_API_KEY ?? 'test',
  maxRetries: 0,
  timeout: 30_000,
});

async function main() {
  const text = '# Mill\n\nThe windmill grinds barley into flour when the wind blows.\n';
  const file = await client.files.create({
    file: await toFile(Buffer.from(text), 'mill.md'),
    purpose: 'assistants',
  });
  const thread = await client.beta.threads.create({
    messages: [
      {
        role: 'user',
        content: 'What does the windmill grind?',
        attachments: [{ file_id: file.id, tools: [{ type: 'file_search' }] }],
      },
    ],
  });
  const vectorStoreIds = thread.tool_resources?.file_search?.vector_store_ids ?? [];
  const [storeId] = vectorStoreIds;
  const done = await client.vectorStores.files.poll(storeId, file.id, { pollIntervalMs: 50 });
  const store = await client.vectorStores.retrieve(storeId);
  const found = [];
  for await (const result of client.vectorStores.search(storeId, { query: 'barley flour' })) {
    found.push(result.filename);
  }
  return {
    ...(await runWithAttachment(thread.id, storeId)),
    threadId: thread.id,
    fileId: file.id,
    vectorStoreIds,
    store: {
      expires_after: store.expires_after,
      expires_at: store.expires_at,
      last_active_at: store.last_active_at,
    },
    fileStatus: done.status,
    found,
  };
}

async function runWithAttachment(threadId, storeId) {
  const text = '# Harbour\n\nGulls circle the lighthouse at dusk.\n';
  const file = await client.files.create({
    file: await toFile(Buffer.from(text), 'harbour.md'),
    purpose: 'assistants',
  });
  const assistant = await client.beta.assistants.create({
    model: 'builtin/echo',
    tools: [{ type: 'file_search' }],
  });
  const run = await client.beta.threads.runs.createAndPoll(
    threadId,
    {
      assistant_id: assistant.id,
      additional_messages: [
        {
          role: 'user',
          content: '/call file_search {"query": "lighthouse gulls"}',
          attachments: [{ file_id: file.id, tools: [{ type: 'file_search' }] }],
        },
      ],
    },
    { pollIntervalMs: 50 },
  );
  const found = [];
  for await (const step of client.beta.threads.runs.steps.list(run.id, { thread_id: threadId })) {
    if (step.step_details.type !== 'tool_calls') continue;
    for (const call of step.step_details.tool_calls) {
      for (const result of call.file_search?.results ?? []) found.push(result.file_name);
    }
  }
  const storeFileIds = [];
  for await (const stored of client.vectorStores.files.list(storeId)) storeFileIds.push(stored.id);
  return { run: { fileId: file.id, status: run.status, found, storeFileIds } };
}

try {
  console.log(JSON.stringify(await main()));
} catch (error) {
  console.log(JSON.stringify({ error: String(error?.stack ?? error) }));
  process.exit(1);
}
