// Creates a thread whose first message attaches a file for file_search, with the official openai
// Node SDK, and prints one JSON object with what the SDK saw, for
// tests/test_inline_vector_stores.py to check.
//
//   node inline_stores.mjs BASE_URL
//
// The API key is OPENAI_API_KEY (else "test"). It uploads a small markdown file, creates the
// thread with `beta.threads.create({messages: [{…, attachments}]})`, waits for the file with
// `vectorStores.files.poll`, searches the thread's store, and prints
// {threadId, fileId, vectorStoreIds, store: {expires_after, …}, fileStatus, found}.
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

try {
  console.log(JSON.stringify(await main()));
} catch (error) {
  console.log(JSON.stringify({ error: String(error?.stack ?? error) }));
  process.exit(1);
}
