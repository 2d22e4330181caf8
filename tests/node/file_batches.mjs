// Drives an assistants-compat server's vector store file batches with the official openai Node
// SDK and prints one JSON object with what the SDK saw, for
// tests/test_vector_store_batches.py to check.
//
//   node file_batches.mjs BASE_URL
//
// BASE_URL may come from COMPAT_BASE_URL instead; the API key is OPENAI_API_KEY (else "test").
//
// - uploaded: `fileBatches.uploadAndPoll(...)` with a Markdown file and an unsupported one;
// - created: `fileBatches.createAndPoll(...)` with `files` (an uploaded file with attributes);
// - listed: `fileBatches.listFiles(...)` of the first batch, auto-paginated one file a page;
// - attributes: the second batch's file as `vectorStores.files.retrieve(...)` reads it.
// Any error is printed as {"error": ...} with exit status 1.

import OpenAI, { toFile } from 'openai';

const baseURL = process.argv[2] ?? process.env.COMPAT_BASE_URL;
if (!baseURL) {
  console.error('usage: node file_batches.mjs BASE_URL');
  process.exit(2);
}

const client = new OpenAI({
  baseURL,
  apiKey: process.env.OPENAI_API_KEY ?? 'test',
  maxRetries: 0,
  timeout: 30_000,
});
const poll = { pollIntervalMs: 25 };

function batchSeen(batch) {
  return { id: batch.id, object: batch.object, status: batch.status, fileCounts: batch.file_counts };
}

async function run() {
  const store = await client.vectorStores.create({ name: 'node batches' });
  const uploaded = await client.vectorStores.fileBatches.uploadAndPoll(
    store.id,
    {
      files: [
        await toFile(Buffer.from('# Node\n\nA zebracorn crossed the river from Node.\n'), 'node.md'),
        await toFile(Buffer.from([0x4d, 0x5a, 0x90, 0x00]), 'tool.exe'),
      ],
    },
    poll,
  );
  const plain = await client.files.create({
    file: await toFile(Buffer.from('plain words sent from Node'), 'plain.txt'),
    purpose: 'assistants',
  });
  const created = await client.vectorStores.fileBatches.createAndPoll(
    store.id,
    { files: [{ file_id: plain.id, attributes: { source: 'node', pages: 3 } }] },
    poll,
  );
  const listed = [];
  for await (const file of client.vectorStores.fileBatches.listFiles(uploaded.id, {
    vector_store_id: store.id,
    limit: 1,
  })) {
    listed.push({ id: file.id, status: file.status, code: file.last_error?.code ?? null });
  }
  const attached = await client.vectorStores.files.retrieve(plain.id, { vector_store_id: store.id });
  return {
    storeId: store.id,
    plainId: plain.id,
    uploaded: batchSeen(uploaded),
    created: batchSeen(created),
    listed,
    attributes: attached.attributes,
  };
}

try {
  console.log(JSON.stringify(await run()));
} catch (error) {
  console.log(JSON.stringify({ error: { name: error?.name, message: String(error?.message ?? error), stack: error?.stack } }));
  process.exit(1);
}
