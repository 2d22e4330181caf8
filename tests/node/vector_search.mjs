// Searches a vector store with the official openai Node SDK and prints one JSON object with
// what the SDK saw, for tests/test_vector_store_search.py to check.
//
//   node vector_search.mjs BASE_URL VECTOR_STORE_ID PLAN_JSON
//
// PLAN_JSON maps names to the body of `vectorStores.search(id, body)`. The output maps each
// name to {"results": [{file_id, filename, score, attributes, text}]} (every page item, read
// with the SDK's auto-pagination) or, when the SDK threw an API error, to
// {"error": {status, type, param, code}}. Any other error is printed as {"error": ...} with
// exit status 1.

import OpenAI from 'openai';

const [baseURL, storeId, planJson] = process.argv.slice(2);
if (!baseURL || !storeId || !planJson) {
  console.error('usage: node vector_search.mjs BASE_URL VECTOR_STORE_ID PLAN_JSON');
  process.exit(2);
}

const client = new OpenAI({
  baseURL,
  apiKey: process.env.OPENAI_API_KEY ?? 'test',
  maxRetries: 0,
  timeout: 30_000,
});

async function search(body) {
  try {
    const results = [];
    for await (const item of client.vectorStores.search(storeId, body)) {
      results.push({
        file_id: item.file_id,
        filename: item.filename,
        score: item.score,
        attributes: item.attributes,
        text: item.content.map((part) => part.text).join(''),
      });
    }
    return { results };
  } catch (error) {
    if (!(error instanceof OpenAI.APIError)) throw error;
    return {
      error: { status: error.status, type: error.type, param: error.param, code: error.code },
    };
  }
}

try {
  const output = {};
  for (const [name, body] of Object.entries(JSON.parse(planJson))) {
    output[name] = await search(body);
  }
  console.log(JSON.stringify(output));
} catch (error) {
  console.log(JSON.stringify({ error: String(error?.stack ?? error) }));
  process.exit(1);
}
