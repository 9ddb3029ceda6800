// The web console in Chromium against a live `totpd serve`: sign-in (and a
// wrong key), adding by URI, by form, by a dropped QR screenshot and by an
// encrypted export, live codes checked against an independent RFC 6238
// implementation, the countdown and the period boundary, HOTP read only on
// a click, rename, delete, an agent key shown once, the audit log, and no
// Content-Security-Policy violation in the whole run.

import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';

import { launch, openPage } from '../lib/browser.js';
import { REPO_ROOT, TotpdServer, api, base32Decode, hotp, totpAt } from '../lib/server.js';

const QR_SHOT = join(REPO_ROOT, 'crates/totpd-import/tests/data/qr/shot_1x.png');
// The secret shot_1x.png holds (RFC 4226's test key), per its expected.json.
const QR_SECRET = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ';
const AEGIS_EXPORT = join(REPO_ROOT, 'crates/totpd-import/tests/data/aegis/aegis_encrypted.json');
const AEGIS_EXPECTED = join(REPO_ROOT, 'crates/totpd-import/tests/data/aegis/aegis.expected.json');
const AEGIS_PASSWORD = 'aegis test password ✓';
const URI_SECRET = 'JBSWY3DPEHPK3PXP';

let server;
let owner;
let browser;
let page;
let problems;
let failed = false;

before(async () => {
  server = new TotpdServer();
  owner = server.createKey('console');
  await server.start();
  browser = await launch();
  ({ page, problems } = await openPage(browser));
  page.setDefaultTimeout(10_000);
  await page.goto(`${server.baseURL}/`);
});

after(async () => {
  await browser?.close();
  const exit = await server?.stop();
  if (server) {
    rmSync(server.dataDir, { recursive: true, force: true });
    if (!failed) rmSync(dirname(server.logPath), { recursive: true, force: true });
  }
  assert.deepEqual(exit, { code: 0, signal: null }, `totpd serve should exit 0 on SIGTERM; its output:\n${server?.logText()}`);
});

// Marks the run failed (the server log is kept) when a test throws.
function step(name, body) {
  test(name, async () => {
    try {
      await body();
    } catch (error) {
      failed = true;
      throw error;
    }
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(what, probe, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await probe();
    if (last) return last;
    await sleep(100);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
}

/** The secret's card on the Secrets page. */
function card(text) {
  return page.locator('li.secret', { hasText: text });
}

/** The code a card shows (digits only), once it shows one. */
async function shownCode(item) {
  return until('a code on the card', async () => (await item.locator('output.code').getAttribute('data-code')) || null);
}

/** Asserts `code` is the TOTP of `secret` at some second of the last few. */
function assertOracleCode(code, secret, opts = {}) {
  const now = Math.floor(Date.now() / 1000);
  const allowed = [];
  // The page rereads a code at most about a second after its period ends
  // (and the test reads the page a moment later): the last 3 seconds.
  for (let unix = now - 3; unix <= now + 1; unix++) allowed.push(totpAt(secret, unix, opts));
  assert.ok(allowed.includes(code), `the page shows ${code}, an independent TOTP gives one of ${allowed.join(', ')}`);
}

async function goTo(view) {
  await page.locator(`#nav button[data-view="${view}"]`).click();
  await page.locator(`#view-${view}`).waitFor({ state: 'visible' });
}

step('a wrong key shows a clear message and signs nobody in', async () => {
  await page.fill('#signin-key-id', `${owner.key_id}.not-the-secret`);
  await page.click('#signin-form button[type="submit"]');
  const message = await until('the sign-in error', async () => (await page.textContent('#signin-error')) || null);
  assert.match(message, /not accepted/);
  assert.ok(await page.isHidden('#nav'), 'the navigation stays hidden');
  assert.ok(await page.isVisible('#view-signin'));
});

step('an owner key signs in with its id and secret and sees the secrets page', async () => {
  await page.fill('#signin-key-id', owner.key_id);
  await page.fill('#signin-secret', owner.secret);
  await page.click('#signin-form button[type="submit"]');
  await page.locator('#view-secrets').waitFor({ state: 'visible' });
  assert.equal(await page.textContent('#signin-error'), '');
  assert.ok(await page.isVisible('#nav [data-view="keys"]'), 'an owner sees the keys page');
  assert.ok(await page.isVisible('#nav [data-view="audit"]'), 'an owner sees the audit log');
  // The key is nowhere the browser keeps or sends on its own.
  const kept = await page.evaluate(() => ({ url: location.href, local: localStorage.length, session: sessionStorage.length, cookie: document.cookie }));
  assert.deepEqual(kept, { url: `${server.baseURL}/`, local: 0, session: 0, cookie: '' });
  assert.equal(await page.inputValue('#signin-secret'), '', 'the secret field is emptied');
});

step('a secret added by URI shows the code an independent TOTP implementation gives', async () => {
  await goTo('add');
  await page.fill('#uri-input', `otpauth://totp/Acme:dana@example.com?secret=${URI_SECRET}&issuer=Acme`);
  await page.click('#uri-form button[type="submit"]');
  await until('the added message', async () => /Added Acme: dana@example.com/.test(await page.textContent('#add-result')));
  await goTo('secrets');
  const item = card('dana@example.com');
  assertOracleCode(await shownCode(item), URI_SECRET);
  const countdown = await until('the countdown', async () => (await item.locator('.countdown').textContent()) || null);
  assert.match(countdown, /^\d+ s$/);
});

step('a QR screenshot dropped on the drop zone adds its secret, with the right codes', async () => {
  await goTo('add');
  const png = readFileSync(QR_SHOT).toString('base64');
  await page.evaluate(async (b64) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const data = new DataTransfer();
    data.items.add(new File([bytes], 'shot_1x.png', { type: 'image/png' }));
    const zone = document.querySelector('#drop-zone');
    zone.dispatchEvent(new DragEvent('dragover', { dataTransfer: data, bubbles: true, cancelable: true }));
    zone.dispatchEvent(new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true }));
  }, png);
  await until('the import result', async () => /1 created/.test(await page.textContent('#add-result')));
  const row = page.locator('#add-result tbody tr');
  assert.equal(await row.count(), 1);
  assert.match(await row.textContent(), /created.*Zürich Bank.*jörg@example\.com/);
  await goTo('secrets');
  assertOracleCode(await shownCode(card('jörg@example.com')), QR_SECRET);
});

step('the same screenshot chosen with the file input is reported a duplicate', async () => {
  await goTo('add');
  await page.setInputFiles('#qr-file', QR_SHOT);
  await until('the import result', async () => /0 created, 1 duplicate/.test(await page.textContent('#add-result')));
  assert.match(await page.textContent('#add-result tbody'), /duplicate/);
});

step('an encrypted export with its password shows each entry created, duplicate or invalid with its reason', async () => {
  const expected = JSON.parse(readFileSync(AEGIS_EXPECTED, 'utf8'));
  await goTo('add');
  await page.setInputFiles('#export-file', AEGIS_EXPORT);
  await page.fill('#export-password', AEGIS_PASSWORD);
  await page.click('#export-form button[type="submit"]');
  const rows = await until('every entry\'s result', async () => {
    const texts = await page.locator('#add-result tbody tr').allTextContents();
    return texts.length === expected.length && texts;
  });
  assert.equal(rows.length, expected.length, rows.join('\n'));
  // The first entry holds the QR screenshot's key: a duplicate.
  assert.match(rows[0], /duplicate/);
  assert.ok(rows.some((row) => /created/.test(row)), rows.join('\n'));
  // Entries totpd cannot serve (Steam, Yandex) are invalid, with the reason.
  const invalid = rows.filter((row) => /invalid/.test(row));
  assert.ok(invalid.length > 0 && invalid.every((row) => /TOTP and HOTP codes only/.test(row)), rows.join('\n'));
  assert.ok(rows.every((row) => /created|duplicate|invalid/.test(row)), rows.join('\n'));
  assert.equal(await page.inputValue('#export-password'), '', 'the password field is emptied');
});

step('a wrong export password shows the server\'s message', async () => {
  await page.setInputFiles('#export-file', AEGIS_EXPORT);
  await page.fill('#export-password', 'wrong');
  await page.click('#export-form button[type="submit"]');
  const text = await until('the error', async () => {
    const shown = await page.textContent('#add-result .error').catch(() => null);
    return shown || null;
  });
  assert.match(text, /password/i);
});

step('a secret the vault generates shows its QR code and URI once, and its codes are right', async () => {
  await page.fill('#manual-label', 'ops@example.com');
  await page.fill('#manual-issuer', 'Intranet');
  await page.click('#manual-form button[type="submit"]');
  const dialog = page.locator('#dlg-once');
  await dialog.waitFor({ state: 'visible' });
  assert.equal(await dialog.locator('svg.qr path').count(), 1, 'the QR code is drawn');
  const uri = await page.textContent('#once-uri');
  assert.match(uri, /^otpauth:\/\/totp\/Intranet:ops(@|%40)example\.com\?/);
  const secret = new URL(uri).searchParams.get('secret');
  assert.ok(base32Decode(secret).length >= 20, uri);
  await page.click('#dlg-once-close');
  assert.ok(await dialog.isHidden());
  assert.ok(!(await page.content()).includes(secret), 'the secret is gone from the page');
  await goTo('secrets');
  assertOracleCode(await shownCode(card('ops@example.com')), secret);
});

step('the countdown moves and the code changes at the period boundary', async () => {
  await api(server, owner, 'POST', '/api/v2/totp/secrets', { label: 'fast', issuer: 'Timer', secret: 'GEZDGNBVGY3TQOJQ', period: 5 });
  await goTo('add');
  await goTo('secrets');
  const item = card('Timer');
  const first = await shownCode(item);
  assertOracleCode(first, 'GEZDGNBVGY3TQOJQ', { period: 5 });
  const counts = new Set();
  let changedTo = null;
  const deadline = Date.now() + 12_000;
  while (Date.now() < deadline && !(changedTo && counts.size >= 3)) {
    counts.add(await item.locator('.countdown').textContent());
    const now = await item.locator('output.code').getAttribute('data-code');
    if (now !== first) changedTo = now;
    await sleep(200);
  }
  assert.ok(counts.size >= 3, `the countdown showed ${[...counts].join(', ')}`);
  for (const text of counts) assert.match(text, /^[0-5] s$/);
  assert.ok(changedTo, `the code stayed ${first} for 12 s of a 5 s period`);
  assertOracleCode(changedTo, 'GEZDGNBVGY3TQOJQ', { period: 5 });
});

step('an HOTP secret reads no code until "Next code" is clicked', async () => {
  const created = await api(server, owner, 'POST', '/api/v2/totp/secrets', { label: 'counter', issuer: 'Hotp Co', secret: URI_SECRET.slice(0, 8) + 'GEZDGNBV', type: 'hotp', counter: 5 });
  const id = created.totp_secret.id;
  await goTo('add');
  await goTo('secrets');
  const item = card('Hotp Co');
  await item.waitFor();
  await sleep(1500);
  assert.equal((await api(server, owner, 'GET', `/api/v2/totp/secrets/${id}`)).totp_secret.counter, 5, 'the counter did not move');
  assert.equal(await item.locator('output.code').textContent(), '—');
  await item.getByRole('button', { name: /Next code/ }).click();
  const code = await shownCode(item);
  assert.equal(code, hotp(base32Decode(URI_SECRET.slice(0, 8) + 'GEZDGNBV'), 5, 6, 'SHA1'));
  assert.match(await item.locator('.countdown').textContent(), /counter 5/);
  assert.equal((await api(server, owner, 'GET', `/api/v2/totp/secrets/${id}`)).totp_secret.counter, 6);
});

step('a secret is renamed from its card', async () => {
  await card('dana@example.com').getByRole('button', { name: /^Rename/ }).click();
  await page.locator('#dlg-rename').waitFor({ state: 'visible' });
  await page.fill('#rename-label', 'dana@acme.test');
  await page.fill('#rename-issuer', 'Acme Corp');
  await page.click('#dlg-rename button[value="ok"]');
  await card('dana@acme.test').waitFor();
  assert.match(await card('dana@acme.test').textContent(), /Acme Corp/);
  const list = await api(server, owner, 'GET', '/api/v2/totp/secrets?q=dana');
  assert.deepEqual(list.totp_secrets.map((s) => [s.label, s.issuer]), [['dana@acme.test', 'Acme Corp']]);
});

step('search and the issuer filter narrow the list', async () => {
  await page.fill('#filter-q', 'DANA');
  await until('one card', async () => {
    const labels = await page.locator('li.secret .label').allTextContents();
    return labels.length === 1 && labels[0] === 'dana@acme.test';
  });
  await page.fill('#filter-q', '');
  await page.selectOption('#filter-issuer', 'Timer');
  await until('the Timer card only', async () => {
    const texts = await page.locator('li.secret .issuer').allTextContents();
    return texts.length === 1 && texts[0] === 'Timer';
  });
  await page.selectOption('#filter-issuer', '');
  await until('every card back', async () => (await page.locator('li.secret').count()) > 3);
});

step('a secret is deleted only after the confirmation', async () => {
  await card('ops@example.com').getByRole('button', { name: /^Delete/ }).click();
  await page.locator('#dlg-confirm').waitFor({ state: 'visible' });
  await page.click('#dlg-confirm button[value="cancel"]');
  await sleep(300);
  assert.equal(await card('ops@example.com').count(), 1, 'cancel keeps it');
  await card('ops@example.com').getByRole('button', { name: /^Delete/ }).click();
  await page.click('#dlg-confirm-ok');
  await until('the card gone', async () => (await card('ops@example.com').count()) === 0);
  const list = await api(server, owner, 'GET', '/api/v2/totp/secrets?q=ops');
  assert.equal(list.totp_secrets.length, 0);
});

step('an agent key scoped to one secret is created and its secret is shown once', async () => {
  await goTo('keys');
  const target = await api(server, owner, 'GET', '/api/v2/totp/secrets?issuer=Timer');
  const timerId = target.totp_secrets[0].id;
  await page.fill('#key-name', 'deploy agent');
  await page.selectOption('#key-role', 'agent');
  await page.check('input[name="key-scope"][value="some"]');
  await page.check(`input[name="key-secret"][value="${timerId}"]`);
  await page.click('#key-form button[type="submit"]');
  const dialog = page.locator('#dlg-once');
  await dialog.waitFor({ state: 'visible' });
  const whole = await page.textContent('#once-key');
  const dot = whole.indexOf('.');
  const agent = { key_id: whole.slice(0, dot), secret: whole.slice(dot + 1) };
  assert.match(agent.key_id, /^tk_/);
  // The key works, for its one secret only.
  const code = await api(server, agent, 'GET', `/api/v2/totp/code/${timerId}`);
  assert.match(code.code, /^\d{6}$/);
  await page.click('#dlg-once-close');
  assert.ok(await dialog.isHidden());
  assert.ok(!(await page.content()).includes(agent.secret), 'the key secret is gone from the page');
  const row = page.locator('#keys-table tbody tr', { hasText: agent.key_id });
  await row.waitFor();
  assert.match(await row.textContent(), /deploy agent.*agent.*1 listed/);
  assert.ok(!(await row.textContent()).includes(agent.secret));
  // Revoking it, after a confirmation.
  await row.getByRole('button', { name: /Revoke/ }).click();
  await page.click('#dlg-confirm-ok');
  await until('the key revoked', async () => /revoked/.test(await page.locator('#keys-table tbody tr', { hasText: agent.key_id }).textContent()));
});

step('the audit log shows the code reads, filtered by action and secret', async () => {
  await goTo('audit');
  await page.selectOption('#audit-action', 'code.read');
  await page.click('#audit-form button[type="submit"]');
  const rows = await until('only code.read rows', async () => {
    const texts = await page.locator('#audit-table tbody tr').allTextContents();
    return texts.length > 0 && texts.every((row) => row.includes('code.read')) && texts;
  });
  assert.ok(rows.some((row) => row.includes('Acme Corp: dana@acme.test')), rows.join('\n'));
  const timer = await api(server, owner, 'GET', '/api/v2/totp/secrets?issuer=Timer');
  await page.selectOption('#audit-secret', timer.totp_secrets[0].id);
  await page.click('#audit-form button[type="submit"]');
  await until('only the Timer rows', async () => {
    const texts = await page.locator('#audit-table tbody tr').allTextContents();
    return texts.length > 0 && texts.every((row) => row.includes('Timer: fast'));
  });
});

step('signing out forgets the key and empties the page', async () => {
  await page.click('#sign-out');
  await page.locator('#view-signin').waitFor({ state: 'visible' });
  assert.equal(await page.locator('li.secret').count(), 0);
  assert.equal(await page.locator('#audit-table tbody tr').count(), 0);
});

step('no Content-Security-Policy violation or page error happened in the whole run', async () => {
  assert.deepEqual(problems, []);
});
