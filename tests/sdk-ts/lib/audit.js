// What the SDK tests received from totpd, checked against its audit log.
//
// `Received.install()` wraps globalThis.fetch (which the SDK uses) and notes
// every code answered (request id, key id, secret id, code), every secret
// stored and every key secret sent. At the end:
// - checkEveryCodeRecordedOnce reads each key's events through
//   GET /api/v2/audit (with the key itself, paging by cursor) and requires
//   exactly one `ok` code.read per code received, with that key id, secret
//   id and request id, and no event holding a code (as a whole number), a
//   secret or a key secret;
// - checkDatabaseHoldsNoneOfIt scans the database files' raw bytes for the
//   secrets and key secrets.
// Nothing seen is ever printed: problems name counts and request ids only.

import { existsSync, readFileSync } from 'node:fs';

const CODE_PATH = /^\/api\/v2\/totp\/code\/([^/]+)$/;
const SECRETS_PATH = '/api/v2/totp/secrets';

function credentials(headers) {
  const id = headers.get('sb-api-key-id');
  const secret = headers.get('sb-api-secret-key');
  if (id && secret) return [id, secret];
  const bearer = /^Bearer\s+([^.\s]+)\.(\S+)$/i.exec(headers.get('authorization') ?? '');
  return bearer ? [bearer[1], bearer[2]] : [null, null];
}

export class Received {
  constructor() {
    this.codes = [];
    this.secrets = new Set();
    this.keySecrets = new Map();
    this.original = null;
  }

  addKey(keyId, secret) {
    this.keySecrets.set(keyId, secret);
  }

  install() {
    const original = globalThis.fetch;
    this.original = original;
    globalThis.fetch = async (input, init) => {
      const response = await original(input, init);
      try {
        await this.note(input, init, response);
      } catch {
        // The bookkeeping never breaks a test.
      }
      return response;
    };
  }

  uninstall() {
    if (this.original) globalThis.fetch = this.original;
    this.original = null;
  }

  async note(input, init, response) {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const method = (init?.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase();
    const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
    const [keyId, keySecret] = credentials(headers);
    // A wrong secret is the test's own invention, not a key's; only keys
    // that authenticated are noted.
    if (keyId && keySecret && response.status !== 401) this.addKey(keyId, keySecret);
    if (response.status !== 200) return;
    const match = CODE_PATH.exec(url.pathname);
    if (method === 'GET' && match) {
      const body = await response.clone().json();
      const requestId = response.headers.get('x-request-id');
      if (typeof body.code === 'string' && requestId && keyId) {
        this.codes.push({ requestId, keyId, secretId: match[1], code: body.code });
      }
    } else if (method === 'POST' && url.pathname === SECRETS_PATH) {
      const stored = (await response.clone().json())?.totp_secret?.secret;
      const sent = typeof init?.body === 'string' ? JSON.parse(init.body).secret : undefined;
      for (const secret of [stored, sent]) {
        if (typeof secret === 'string' && secret.length >= 16) {
          this.secrets.add(secret);
          this.secrets.add(secret.replace(/[\s=-]/g, '').toUpperCase());
        }
      }
    }
  }

  hidden() {
    return [...this.secrets, ...this.keySecrets.values()];
  }
}

class Forbidden extends Error {}

// Every audit event of `keyId`, read with the key `readerId`.
async function allEvents(fetch, baseURL, keyId, readerId, readerSecret) {
  const events = [];
  let cursor = null;
  for (;;) {
    const query = new URLSearchParams({ key_id: keyId, limit: '1000' });
    if (cursor) query.set('cursor', cursor);
    const answer = await fetch(`${baseURL}/api/v2/audit?${query}`, {
      headers: { 'sb-api-key-id': readerId, 'sb-api-secret-key': readerSecret },
    });
    if (answer.status === 403) throw new Forbidden(`GET /api/v2/audit with ${readerId}: 403`);
    if (answer.status !== 200) throw new Error(`GET /api/v2/audit for ${keyId}: ${answer.status}`);
    const page = await answer.json();
    events.push(...page.events);
    cursor = page.next_cursor;
    if (!cursor) return events;
  }
}

// The key's events, read with the key itself or, for a key whose role may
// not read the audit log (agent, verifier: 403), with the noted key of its
// account that can (the log is per account: another account's key sees
// none of them).
async function eventsOf(fetch, received, baseURL, keyId, secret) {
  try {
    return await allEvents(fetch, baseURL, keyId, keyId, secret);
  } catch (err) {
    if (!(err instanceof Forbidden)) throw err;
  }
  let best = [];
  for (const [readerId, readerSecret] of received.keySecrets) {
    if (readerId === keyId) continue;
    try {
      const events = await allEvents(fetch, baseURL, keyId, readerId, readerSecret);
      if (events.length > best.length) best = events;
    } catch (err) {
      if (!(err instanceof Forbidden)) throw err;
    }
  }
  return best;
}

// Problems found (empty when every code received has exactly one record and
// no event holds anything secret).
export async function checkEveryCodeRecordedOnce(received, baseURL) {
  const fetch = received.original ?? globalThis.fetch;
  const problems = [];
  const byKey = new Map();
  for (const served of received.codes) {
    if (!byKey.has(served.keyId)) byKey.set(served.keyId, []);
    byKey.get(served.keyId).push(served);
  }
  const codes = new Set(received.codes.map((c) => c.code));
  const hidden = received.hidden();
  for (const [keyId, served] of byKey) {
    const secret = received.keySecrets.get(keyId);
    if (!secret) {
      problems.push(`no key secret noted for ${keyId}`);
      continue;
    }
    const events = await eventsOf(fetch, received, baseURL, keyId, secret);
    for (const event of events) {
      const text = JSON.stringify(event);
      if (hidden.some((h) => text.includes(h))) problems.push(`audit event ${event.id} holds a secret or key secret`);
      if ((text.match(/\d+/g) ?? []).some((n) => codes.has(n))) problems.push(`audit event ${event.id} holds a code`);
    }
    const ok = new Map();
    for (const event of events) {
      if (event.action !== 'code.read' || event.outcome !== 'ok') continue;
      ok.set(event.request_id, [...(ok.get(event.request_id) ?? []), event]);
    }
    for (const one of served) {
      const found = ok.get(one.requestId) ?? [];
      if (found.length !== 1) {
        problems.push(`request ${one.requestId} (key ${keyId}) got a code and has ${found.length} ok code.read records`);
      } else if (found[0].key_id !== keyId || found[0].secret_id !== one.secretId) {
        problems.push(`request ${one.requestId}: recorded key ${found[0].key_id} secret ${found[0].secret_id}, served key ${keyId} secret ${one.secretId}`);
      }
    }
  }
  return problems;
}

// Problems found in the raw bytes of the SQLite database `db` and its WAL.
export function checkDatabaseHoldsNoneOfIt(received, db) {
  const problems = [];
  const hidden = received.hidden();
  for (const path of [db, `${db}-wal`]) {
    if (!existsSync(path)) continue;
    const raw = readFileSync(path);
    if (hidden.some((h) => raw.includes(Buffer.from(h)))) problems.push(`${path} holds a secret or key secret in its bytes`);
  }
  return problems;
}
