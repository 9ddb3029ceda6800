// Sendblue's TypeScript SDK (npm `sendblue`, pinned by package-lock.json)
// with keys of every role: owner and admin keys do everything the SDK
// does; an agent key creates, lists and reads codes but may not delete
// (403 forbidden, PermissionDeniedError); a key scoped to one secret sees
// only that one; a verifier key gets none of the four operations. Keys are
// made through POST /api/v2/keys with the account's owner key.

import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';

import SendblueAPI, { NotFoundError, PermissionDeniedError } from 'sendblue';

import { allowedCodeResponses, base32Encode } from '../lib/otp.js';
import { liveServer } from '../lib/suite.js';

let accounts = 0;
// What the clients received is checked against the audit log at the end.
const suite = liveServer('sdk-ts-roles-owner');

function newAccount(name) {
  accounts += 1;
  return suite.server.createKey(`sdk-ts-roles-${accounts}-${name}`);
}

const clientFor = (key) =>
  new SendblueAPI({ baseURL: suite.server.baseURL, apiKey: key.key_id, apiSecret: key.secret, maxRetries: 0 });

const randomSecret = () => base32Encode(randomBytes(20));

// POST /api/v2/keys as `owner`; returns {key_id, secret}.
async function makeKey(owner, body) {
  const resp = await fetch(`${suite.server.baseURL}/api/v2/keys`, {
    method: 'POST',
    headers: { 'sb-api-key-id': owner.key_id, 'sb-api-secret-key': owner.secret, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const answer = await resp.json();
  assert.equal(resp.status, 200, JSON.stringify(answer));
  assert.equal(answer.api_key.role, body.role);
  return { key_id: answer.api_key.key_id, secret: answer.secret };
}

async function checkCode(client, id, secret) {
  const t0 = Date.now();
  const resp = await client.v2.totp.getCode(id);
  const t1 = Date.now();
  assert.equal(resp.status, 'OK');
  assert.ok(allowedCodeResponses(secret, t0, t1).has(`${resp.code} ${resp.expires_in}`), `code ${resp.code}`);
}

async function rejects(promise, ErrorClass, status, code) {
  let err;
  try {
    const value = await promise;
    assert.fail(`expected ${ErrorClass.name}, got a success: ${JSON.stringify(value)}`);
  } catch (caught) {
    err = caught;
  }
  if (err instanceof assert.AssertionError) throw err;
  assert.ok(err instanceof ErrorClass, `expected ${ErrorClass.name}, got ${err?.constructor?.name}: ${err?.message}`);
  assert.equal(err.status, status);
  assert.equal(err.error?.error, code, JSON.stringify(err.error));
}

const listedIds = async (client) => (await client.v2.totp.secrets.list()).totp_secrets.map((s) => s.id);

describe('roles', () => {
  for (const role of ['owner', 'admin']) {
    test(`an ${role} key does everything the SDK does`, async () => {
      const owner = newAccount(role);
      const client = clientFor(await makeKey(owner, { role, name: `ts ${role}` }));
      const secret = randomSecret();
      const record = (await client.v2.totp.secrets.create({ secret, label: `${role}@example.com` })).totp_secret;
      assert.deepEqual(await listedIds(client), [record.id]);
      await checkCode(client, record.id, secret);
      assert.equal((await client.v2.totp.secrets.delete(record.id)).status, 'OK');
      assert.deepEqual(await listedIds(client), []);
    });
  }

  test('an agent key creates, lists and reads codes but may not delete', async () => {
    const owner = newAccount('agent');
    const client = clientFor(await makeKey(owner, { role: 'agent' }));
    const secret = randomSecret();
    const record = (await client.v2.totp.secrets.create({ secret, label: 'agent@example.com' })).totp_secret;
    assert.deepEqual(await listedIds(client), [record.id]);
    await checkCode(client, record.id, secret);
    await rejects(client.v2.totp.secrets.delete(record.id), PermissionDeniedError, 403, 'forbidden');
    await checkCode(client, record.id, secret);
  });

  test('a key scoped to one secret sees that one only', async () => {
    const owner = newAccount('scoped');
    const ownerClient = clientFor(owner);
    const mineSecret = randomSecret();
    const mine = (await ownerClient.v2.totp.secrets.create({ secret: mineSecret, label: 'mine' })).totp_secret;
    const other = (await ownerClient.v2.totp.secrets.create({ secret: randomSecret(), label: 'other' })).totp_secret;
    const scoped = clientFor(await makeKey(owner, { role: 'agent', secret_ids: [mine.id] }));
    assert.deepEqual(await listedIds(scoped), [mine.id]);
    await checkCode(scoped, mine.id, mineSecret);
    await rejects(scoped.v2.totp.getCode(other.id), NotFoundError, 404, 'not_found');
    await rejects(scoped.v2.totp.getCode(randomUUID()), NotFoundError, 404, 'not_found');
    await rejects(scoped.v2.totp.secrets.create({ secret: randomSecret(), label: 'new' }), PermissionDeniedError, 403, 'forbidden');
    assert.deepEqual(new Set(await listedIds(ownerClient)), new Set([mine.id, other.id]));
  });

  test('a verifier key gets none of the SDK operations', async () => {
    const owner = newAccount('verifier');
    const ownerClient = clientFor(owner);
    const record = (await ownerClient.v2.totp.secrets.create({ secret: randomSecret(), label: 'v' })).totp_secret;
    const verifier = clientFor(await makeKey(owner, { role: 'verifier' }));
    await rejects(verifier.v2.totp.secrets.list(), PermissionDeniedError, 403, 'forbidden');
    await rejects(verifier.v2.totp.getCode(record.id), PermissionDeniedError, 403, 'forbidden');
    await rejects(verifier.v2.totp.secrets.create({ secret: randomSecret(), label: 'x' }), PermissionDeniedError, 403, 'forbidden');
    await rejects(verifier.v2.totp.secrets.delete(record.id), PermissionDeniedError, 403, 'forbidden');
    assert.deepEqual(await listedIds(ownerClient), [record.id]);
  });
});
