// A live `totpd serve` for the console tests: the TypeScript SDK tests'
// server helper (a fresh data dir, a free port, `totpd keys create --json`),
// and a small API client for arranging what the browser then shows.

import { TotpdServer } from '../../sdk-ts/lib/server.js';

export { TotpdServer };
export { REPO_ROOT } from '../../sdk-ts/lib/server.js';
export { base32Decode, hotp, totpAt } from '../../sdk-ts/lib/otp.js';

/** Calls the API as `key` ({key_id, secret}); resolves to the JSON answer. */
export async function api(server, key, method, path, json) {
  const headers = { 'sb-api-key-id': key.key_id, 'sb-api-secret-key': key.secret };
  if (json !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${server.baseURL}${path}`, {
    method,
    headers,
    body: json === undefined ? undefined : JSON.stringify(json),
  });
  const answer = await response.json();
  if (!response.ok) throw new Error(`${method} ${path}: HTTP ${response.status} ${JSON.stringify(answer)}`);
  return answer;
}
