// Sendblue's TypeScript SDK (npm `sendblue`, pinned by package-lock.json)
// against a live totpd serve. Only the base URL and the key are configured;
// the SDK is not patched. Codes are checked against lib/otp.js at the
// instant the server must have read its clock.

import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';

import SendblueAPI, { AuthenticationError, BadRequestError, NotFoundError } from 'sendblue';

import { allowedCodeResponses, base32Decode, base32Encode, totpAt } from '../lib/otp.js';
import { liveServer } from '../lib/suite.js';

// RFC 6238 Appendix B seeds: 20, 32 and 64 bytes.
const SEEDS = {
  SHA1: base32Encode(Buffer.from('12345678901234567890')),
  SHA256: base32Encode(Buffer.from('12345678901234567890123456789012')),
  SHA512: base32Encode(Buffer.from('1234567890'.repeat(6) + '1234')),
};

let accounts = 0;
// What the clients received is checked against the audit log at the end.
const suite = liveServer('sdk-ts-owner', { checkDatabase: true });
const { received } = suite;

// A test whose failure message carries what the server printed meanwhile.
function it(name, fn) {
  test(name, async (t) => {
    const start = suite.server.logSize();
    try {
      await fn(t);
    } catch (err) {
      suite.failed = true;
      const log = `\n--- totpd serve output during this test (${suite.server.logPath}) ---\n${suite.server.logText(start)}`;
      if (err instanceof Error) {
        // The reporters print the stack, which was fixed at construction.
        err.message += log;
        if (typeof err.stack === 'string') err.stack += log;
        throw err;
      }
      throw new Error(String(err) + log);
    }
  });
}

function newAccount(name) {
  accounts += 1;
  const key = suite.server.createKey(`sdk-ts-${accounts}-${name.replace(/[^A-Za-z0-9_-]+/g, '-').slice(0, 50)}`);
  received.addKey(key.key_id, key.secret);
  return key;
}

// max_retries 0 so a 5xx or 429 fails at once instead of being retried into
// success; everything else is as shipped.
function clientFor(key, options = { maxRetries: 0 }) {
  return new SendblueAPI({ baseURL: suite.server.baseURL, apiKey: key.key_id, apiSecret: key.secret, ...options });
}

function freshClient(name) {
  return clientFor(newAccount(name));
}

const randomSecret = (n = 20) => base32Encode(randomBytes(n));
const sameBytes = (a, b) => assert.equal(base32Decode(a).toString('hex'), base32Decode(b).toString('hex'));

async function checkCode(client, id, secret, { algorithm = 'SHA1', digits = 6, period = 30 } = {}) {
  const t0 = Date.now();
  const resp = await client.v2.totp.getCode(id);
  const t1 = Date.now();
  assert.equal(resp.status, 'OK');
  assert.match(resp.code, new RegExp(`^[0-9]{${digits}}$`));
  assert.ok(Number.isInteger(resp.expires_in) && resp.expires_in >= 1 && resp.expires_in <= period, `expires_in ${resp.expires_in}`);
  const allowed = allowedCodeResponses(secret, t0, t1, { algorithm, digits, period });
  assert.ok(
    allowed.has(`${resp.code} ${resp.expires_in}`),
    `server answered code=${resp.code} expires_in=${resp.expires_in}; a correct server could answer only one of ` +
      `${[...allowed.keys()].join(', ')} (clock read between ${t0} and ${t1} ms)`,
  );
  return resp.code;
}

function checkRecord(record, { label, issuer, algorithm, digits, period }) {
  assert.equal(record.label, label);
  assert.equal(record.issuer ?? null, issuer);
  assert.equal(record.algorithm, algorithm);
  assert.equal(record.digits, digits);
  assert.equal(record.period, period);
  assert.match(record.id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i);
  assert.match(record.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)$/, `created_at ${record.created_at} is not RFC 3339 UTC`);
  const age = Date.now() - Date.parse(record.created_at);
  assert.ok(age > -5_000 && age < 300_000, `created_at ${record.created_at} is not now`);
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
  assert.equal(err.error?.status, 'ERROR', JSON.stringify(err.error));
  assert.equal(err.error?.error, code, JSON.stringify(err.error));
  assert.equal(typeof err.error?.message, 'string', JSON.stringify(err.error));
  return err;
}

describe('create', () => {
  it('from a uri takes every field from the uri', async () => {
    const client = freshClient('uri');
    const secret = randomSecret();
    const uri =
      `otpauth://totp/${encodeURIComponent('ACME Co')}:${encodeURIComponent('alice@example.com')}` +
      `?secret=${secret}&issuer=${encodeURIComponent('ACME Co')}&algorithm=SHA512&digits=8&period=60`;
    const resp = await client.v2.totp.secrets.create({ uri });
    assert.equal(resp.status, 'OK');
    checkRecord(resp.totp_secret, { label: 'alice@example.com', issuer: 'ACME Co', algorithm: 'SHA512', digits: 8, period: 60 });
    sameBytes(resp.totp_secret.secret, secret);
    await checkCode(client, resp.totp_secret.id, secret, { algorithm: 'SHA512', digits: 8, period: 60 });
  });

  for (const [algorithm, digits, period] of [
    ['SHA1', 8, 60],
    ['SHA256', 6, 15],
    ['SHA256', 8, 30],
    ['SHA512', 6, 30],
  ]) {
    it(`from a secret with ${algorithm}, ${digits} digits, ${period}s`, async () => {
      const client = freshClient(`secret-${algorithm}`);
      const label = `seed ${algorithm} ${digits} ${period}`;
      const resp = await client.v2.totp.secrets.create({
        secret: SEEDS[algorithm], label, issuer: 'RFC 6238', algorithm, digits, period,
      });
      assert.equal(resp.status, 'OK');
      checkRecord(resp.totp_secret, { label, issuer: 'RFC 6238', algorithm, digits, period });
      sameBytes(resp.totp_secret.secret, SEEDS[algorithm]);
      await checkCode(client, resp.totp_secret.id, SEEDS[algorithm], { algorithm, digits, period });
    });
  }

  it('from a secret alone defaults to SHA1, 6 digits, 30 seconds', async () => {
    const client = freshClient('defaults');
    const secret = randomSecret(10); // 80 bits, as GitHub and Discord issue them
    const resp = await client.v2.totp.secrets.create({ secret, label: 'defaults' });
    checkRecord(resp.totp_secret, { label: 'defaults', issuer: null, algorithm: 'SHA1', digits: 6, period: 30 });
    await checkCode(client, resp.totp_secret.id, secret);
  });

  it('without a secret generates 160 bits, returned once', async () => {
    const client = freshClient('generated');
    const resp = await client.v2.totp.secrets.create({ label: 'generated', issuer: 'Vault' });
    assert.equal(resp.status, 'OK');
    const record = resp.totp_secret;
    checkRecord(record, { label: 'generated', issuer: 'Vault', algorithm: 'SHA1', digits: 6, period: 30 });
    assert.equal(record.secret.replace(/=+$/, '').length, 32, record.secret);
    assert.equal(base32Decode(record.secret).length, 20);
    await checkCode(client, record.id, record.secret);

    const again = await client.v2.totp.secrets.create({ label: 'generated again' });
    assert.notEqual(base32Decode(again.totp_secret.secret).toString('hex'), base32Decode(record.secret).toString('hex'));

    const listText = await (await client.v2.totp.secrets.list().asResponse()).text();
    const codeText = await (await client.v2.totp.getCode(record.id).asResponse()).text();
    for (const text of [listText, codeText]) {
      assert.ok(!text.includes(record.secret), `secret leaked after creation: ${text}`);
      assert.ok(!/"secret"\s*:/.test(text), `a read carries a secret field: ${text}`);
    }
  });
});

describe('list', () => {
  it('shows this account\'s secrets and never their secret', async () => {
    const client = freshClient('list');
    assert.deepEqual((await client.v2.totp.secrets.list()).totp_secrets, []);
    const made = new Map();
    for (const [n, algorithm] of ['SHA1', 'SHA256', 'SHA512'].entries()) {
      const resp = await client.v2.totp.secrets.create({
        secret: randomSecret(), label: `list ${n}`, issuer: `Issuer ${n}`, algorithm, digits: n % 2 ? 8 : 6, period: 30 * (n + 1),
      });
      made.set(resp.totp_secret.id, resp.totp_secret);
    }
    const { data, response } = await client.v2.totp.secrets.list().withResponse();
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
    assert.equal(data.status, 'OK');
    assert.deepEqual(new Set(data.totp_secrets.map((s) => s.id)), new Set(made.keys()));
    for (const listed of data.totp_secrets) {
      assert.ok(!('secret' in listed), `list carries a secret: ${JSON.stringify(listed)}`);
      const { secret: _secret, ...expected } = made.get(listed.id);
      assert.deepEqual(
        Object.fromEntries(Object.keys(expected).map((k) => [k, listed[k]])),
        expected,
      );
    }
  });
});

describe('delete', () => {
  it('then code is NotFoundError', async () => {
    const client = freshClient('delete');
    const secret = randomSecret();
    const { totp_secret: record } = await client.v2.totp.secrets.create({ secret, label: 'to delete' });
    await checkCode(client, record.id, secret);
    assert.equal((await client.v2.totp.secrets.delete(record.id)).status, 'OK');
    await rejects(client.v2.totp.getCode(record.id), NotFoundError, 404, 'not_found');
    await rejects(client.v2.totp.secrets.delete(record.id), NotFoundError, 404, 'not_found');
    assert.deepEqual((await client.v2.totp.secrets.list()).totp_secrets, []);
  });

  it('an unknown id is NotFoundError', async () => {
    const client = freshClient('unknown');
    await rejects(client.v2.totp.getCode(randomUUID()), NotFoundError, 404, 'not_found');
    await rejects(client.v2.totp.secrets.delete(randomUUID()), NotFoundError, 404, 'not_found');
  });
});

describe('tenancy', () => {
  it('another account\'s secret is NotFoundError', async () => {
    const owner = freshClient('owner');
    const other = freshClient('other');
    const secret = randomSecret();
    const { totp_secret: record } = await owner.v2.totp.secrets.create({ secret, label: 'mine' });
    await rejects(other.v2.totp.getCode(record.id), NotFoundError, 404, 'not_found');
    await rejects(other.v2.totp.secrets.delete(record.id), NotFoundError, 404, 'not_found');
    assert.deepEqual((await other.v2.totp.secrets.list()).totp_secrets, []);
    await checkCode(owner, record.id, secret);
  });
});

describe('errors', () => {
  it('a wrong key is AuthenticationError, the same body every time', async () => {
    const key = newAccount('wrong-key');
    const bodies = [];
    for (const bad of [
      { key_id: key.key_id, secret: key.secret + 'x' },
      { key_id: 'not-a-key-id', secret: key.secret },
    ]) {
      const client = clientFor(bad);
      for (const call of [
        () => client.v2.totp.secrets.list(),
        () => client.v2.totp.secrets.create({ secret: randomSecret(), label: 'x' }),
        () => client.v2.totp.getCode(randomUUID()),
        () => client.v2.totp.secrets.delete(randomUUID()),
      ]) {
        bodies.push((await rejects(call(), AuthenticationError, 401, 'unauthorized')).error);
      }
    }
    for (const body of bodies) assert.deepEqual(body, bodies[0]);
    assert.deepEqual((await clientFor(key).v2.totp.secrets.list()).totp_secrets, []);
  });

  const badCreates = {
    'digits 7': { secret: SEEDS.SHA1, label: 'x', digits: 7 },
    'digits "six"': { secret: SEEDS.SHA1, label: 'x', digits: 'six' },
    'invalid base32': { secret: 'NOT-BASE32-1890!', label: 'x' },
    'algorithm MD5': { secret: SEEDS.SHA1, label: 'x', algorithm: 'MD5' },
    'period 0': { secret: SEEDS.SHA1, label: 'x', period: 0 },
    'no label and no uri': { secret: SEEDS.SHA1 },
    'a uri that is not a string': { uri: 42 },
  };
  for (const [name, body] of Object.entries(badCreates)) {
    it(`bad input (${name}) is BadRequestError`, async () => {
      const client = freshClient('bad');
      await rejects(client.v2.totp.secrets.create(body), BadRequestError, 400, 'invalid_request');
      assert.deepEqual((await client.v2.totp.secrets.list()).totp_secrets, []);
    });
  }
});

describe('configuration', () => {
  it('accessToken "<key_id>.<secret>" is sent as a Bearer token and accepted', async () => {
    const key = newAccount('bearer');
    const client = new SendblueAPI({ baseURL: suite.server.baseURL, accessToken: `${key.key_id}.${key.secret}`, maxRetries: 0 });
    const secret = randomSecret();
    const { totp_secret: record } = await client.v2.totp.secrets.create({ secret, label: 'bearer' });
    assert.deepEqual((await client.v2.totp.secrets.list()).totp_secrets.map((s) => s.id), [record.id]);
    await checkCode(client, record.id, secret);
    // The same secret is visible through the header pair of the same key.
    await checkCode(clientFor(key), record.id, secret);
    assert.equal((await client.v2.totp.secrets.delete(record.id)).status, 'OK');

    const wrong = new SendblueAPI({ baseURL: suite.server.baseURL, accessToken: `${key.key_id}.${key.secret}x`, maxRetries: 0 });
    await rejects(wrong.v2.totp.secrets.list(), AuthenticationError, 401, 'unauthorized');
  });

  it('a client with only baseURL and the key does everything', async () => {
    const key = newAccount('drop-in');
    const client = new SendblueAPI({ baseURL: suite.server.baseURL, apiKey: key.key_id, apiSecret: key.secret });
    const secret = randomSecret();
    const { totp_secret: record } = await client.v2.totp.secrets.create({ secret, label: 'drop-in' });
    assert.deepEqual((await client.v2.totp.secrets.list()).totp_secrets.map((s) => s.id), [record.id]);
    await checkCode(client, record.id, secret);
    assert.equal((await client.v2.totp.secrets.delete(record.id)).status, 'OK');
  });
});

describe('oracle', () => {
  test('lib/otp.js matches RFC 6238 Appendix B', () => {
    const rows = [
      [59, '94287082', '46119246', '90693936'],
      [1111111109, '07081804', '68084774', '25091201'],
      [1111111111, '14050471', '67062674', '99943326'],
      [1234567890, '89005924', '91819424', '93441116'],
      [2000000000, '69279037', '90698825', '38618901'],
      [20000000000, '65353130', '77737706', '47863826'],
    ];
    for (const [unix, sha1, sha256, sha512] of rows) {
      assert.equal(totpAt(SEEDS.SHA1, unix, { algorithm: 'SHA1', digits: 8 }), sha1);
      assert.equal(totpAt(SEEDS.SHA256, unix, { algorithm: 'SHA256', digits: 8 }), sha256);
      assert.equal(totpAt(SEEDS.SHA512, unix, { algorithm: 'SHA512', digits: 8 }), sha512);
    }
  });
});
