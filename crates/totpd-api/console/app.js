// The totpd web console: sign-in, the secrets with live codes, adding
// (URI, form, QR screenshot, export file), renaming, deleting, API keys and
// the audit log. Plain DOM, no framework: see ARCHITECTURE.md.

import { ApiError, call, forget, parseKey, setCredentials, signedIn } from './api.js';
import {
  $, announce, clear, confirmDialog, copyText, groupCode, h, localInputToRfc3339,
  qrFromSvg, selectText, toBase64, when,
} from './ui.js';

const IMAGE_TYPES = new Set(['image/png', 'image/jpeg', 'image/webp']);
const PAGE_SIZE = 100;

const state = {
  // What the key may do, learnt at sign-in from the answers of /keys and /audit.
  owner: false,
  audit: false,
  // Every secret of the account (id -> secret), for the issuer filter, the
  // key scope and the audit log's names.
  all: new Map(),
  listCursor: null,
  auditCursor: null,
  view: 'signin',
};

// ---------------------------------------------------------------------------
// Live codes. A TOTP code is read once per period: the answer's expires_in
// gives the end of the period (counted from when the answer arrived, so the
// countdown never ends before the server's period does), and one ticker
// updates every countdown and rereads the codes whose period has ended.
// Nothing is read while the tab is hidden: every read is a code.read in the
// audit log and a code nobody looks at should not be handed out.

const live = new Map(); // secret id -> { deadline, period, busy, els, stopped }
let ticker = null;

function startTicker() {
  if (ticker === null) ticker = setInterval(tick, 250);
}

function stopLive() {
  live.clear();
  clearInterval(ticker);
  ticker = null;
}

function tick() {
  if (document.hidden) return;
  const now = performance.now();
  for (const [id, entry] of live) {
    if (!entry.els.code.isConnected) {
      live.delete(id);
      continue;
    }
    if (entry.stopped) continue;
    paint(entry, now);
    if (!entry.busy && now >= entry.deadline) readCode(id, entry);
  }
}

/** The countdown of one code, redrawn when its whole second changes. */
function paint(entry, now) {
  const left = Math.max(0, Math.ceil((entry.deadline - now) / 1000));
  if (entry.shown === left) return;
  entry.shown = left;
  entry.els.count.textContent = entry.deadline ? `${left} s` : '';
  entry.els.bar.value = entry.deadline ? left : 0;
}

async function readCode(id, entry) {
  entry.busy = true;
  try {
    const answer = await call('GET', `/api/v2/totp/code/${encodeURIComponent(id)}`);
    entry.deadline = performance.now() + answer.expires_in * 1000;
    entry.period = answer.period;
    entry.els.bar.max = answer.period;
    entry.els.code.textContent = groupCode(answer.code);
    entry.els.code.dataset.code = answer.code;
    entry.els.copy.disabled = false;
    paint(entry, performance.now());
  } catch (error) {
    // A refusal (a verifier key, a scope) will not change by asking again.
    entry.stopped = true;
    entry.els.code.textContent = '—';
    entry.els.count.textContent = error.status === 403 ? 'this key may not read codes' : error.message;
  } finally {
    entry.busy = false;
  }
}

document.addEventListener('visibilitychange', () => {
  if (!document.hidden) tick();
});

// ---------------------------------------------------------------------------
// Views

const VIEWS = ['signin', 'secrets', 'add', 'keys', 'audit'];

function show(view, { focus = true } = {}) {
  state.view = view;
  for (const name of VIEWS) $(`#view-${name}`).hidden = name !== view;
  for (const button of document.querySelectorAll('#nav button')) {
    if (button.dataset.view === view) button.setAttribute('aria-current', 'page');
    else button.removeAttribute('aria-current');
  }
  if (focus) $(`#view-${view} h1`).focus();
  if (view === 'secrets') loadSecrets();
  else stopLive();
  if (view === 'keys') loadKeys();
  if (view === 'audit') loadAudit(true);
}

for (const button of document.querySelectorAll('#nav button')) {
  button.addEventListener('click', () => show(button.dataset.view));
}

// ---------------------------------------------------------------------------
// Sign-in and sign-out

let session = false;

$('#signin-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const error = $('#signin-error');
  error.textContent = '';
  const key = parseKey($('#signin-key-id').value, $('#signin-secret').value);
  if (!key) {
    error.textContent = 'Enter a key id and its secret, or the whole key as key_id.secret.';
    return;
  }
  setCredentials(key);
  try {
    await call('GET', '/api/v2/totp/secrets', { query: { limit: 1 } });
  } catch (failure) {
    forget();
    error.textContent = failure.status === 401
      ? 'This key was not accepted: the key id or the secret is wrong, or the key was revoked or has expired.'
      : failure.message;
    return;
  }
  $('#signin-secret').value = '';
  $('#signin-key-id').value = '';
  session = true;
  state.owner = await allowed('/api/v2/keys');
  state.audit = await allowed('/api/v2/audit', { limit: 1 });
  document.querySelector('#nav [data-view="keys"]').hidden = !state.owner;
  document.querySelector('#nav [data-view="audit"]').hidden = !state.audit;
  $('#nav').hidden = false;
  $('#sign-out').hidden = false;
  show('secrets');
});

/** Whether this key may GET path (a 403 says no). */
async function allowed(path, query) {
  try {
    await call('GET', path, { query });
    return true;
  } catch {
    return false;
  }
}

function signOut(message) {
  forget();
  session = false;
  stopLive();
  state.all.clear();
  // Nothing read with the key stays on the page.
  for (const id of ['#secret-list', '#keys-table tbody', '#audit-table tbody', '#add-result-body', '#key-scope-list']) clear($(id));
  $('#add-result').hidden = true;
  for (const dialog of document.querySelectorAll('dialog[open]')) dialog.close();
  $('#nav').hidden = true;
  $('#sign-out').hidden = true;
  show('signin');
  $('#signin-error').textContent = message ?? '';
  announce(message ? '' : 'Signed out.');
}

$('#sign-out').addEventListener('click', () => signOut());
window.addEventListener('totpd:unauthorized', () => {
  if (session) signOut('The server no longer accepts this key (revoked or expired). Sign in again.');
});

// ---------------------------------------------------------------------------
// Secrets

async function refreshAll() {
  const answer = await call('GET', '/api/v2/totp/secrets');
  state.all = new Map(answer.totp_secrets.map((secret) => [secret.id, secret]));
  const select = $('#filter-issuer');
  const chosen = select.value;
  const issuers = [...new Set(answer.totp_secrets.map((s) => s.issuer).filter(Boolean))]
    .sort((a, b) => a.localeCompare(b));
  select.replaceChildren(h('option', { value: '' }, 'All issuers'), ...issuers.map((name) => h('option', { value: name }, name)));
  select.value = issuers.includes(chosen) ? chosen : '';
}

// Each load of a list counts itself; an answer that arrives after a newer
// load started (typing in the search box) is dropped.
let secretsLoad = 0;
let auditLoad = 0;

async function loadSecrets(more = false) {
  const load = ++secretsLoad;
  try {
    if (!more) await refreshAll();
    const answer = await call('GET', '/api/v2/totp/secrets', {
      query: { q: $('#filter-q').value.trim(), issuer: $('#filter-issuer').value, limit: PAGE_SIZE, cursor: more ? state.listCursor : undefined },
    });
    if (load !== secretsLoad || state.view !== 'secrets') return;
    const list = $('#secret-list');
    if (!more) {
      stopLive();
      clear(list);
    }
    for (const secret of answer.totp_secrets) list.append(secretItem(secret));
    state.listCursor = answer.next_cursor ?? null;
    $('#secrets-more').hidden = !state.listCursor;
    $('#secrets-empty').hidden = list.children.length > 0;
    if (live.size) startTicker();
  } catch (error) {
    announce(error.message, 'error');
  }
}

function secretItem(secret) {
  const name = secret.issuer ? `${secret.issuer}: ${secret.label}` : secret.label;
  const code = h('output', { class: 'code', 'aria-live': 'polite', 'aria-label': `Code for ${name}` }, '······');
  const copy = h('button', { type: 'button', disabled: true, onclick: () => copyCode(code) }, 'Copy');
  copy.setAttribute('aria-label', `Copy the code for ${name}`);
  const details = `${secret.type === 'hotp' ? 'HOTP' : `TOTP · ${secret.period} s`} · ${secret.digits} digits · ${secret.algorithm}`;
  let timer;
  if (secret.type === 'hotp') {
    timer = h('button', {
      type: 'button',
      'aria-label': `Next code for ${name}`,
      onclick: async (event) => {
        const button = event.currentTarget;
        button.disabled = true;
        try {
          // Reading an HOTP code uses up its counter: only ever on a click.
          const answer = await call('GET', `/api/v2/totp/code/${encodeURIComponent(secret.id)}`);
          code.textContent = groupCode(answer.code);
          code.dataset.code = answer.code;
          copy.disabled = false;
          counter.textContent = `counter ${answer.counter}`;
        } catch (error) {
          announce(error.message, 'error');
        } finally {
          button.disabled = false;
        }
      },
    }, 'Next code');
    code.textContent = '—';
  }
  const counter = h('span', { class: 'countdown', role: 'timer', 'aria-label': 'Seconds left' });
  const bar = h('progress', { max: secret.period, value: 0, 'aria-hidden': 'true' });
  const item = h('li', { class: 'secret', 'data-id': secret.id },
    h('div', { class: 'who' },
      h('p', { class: 'issuer' }, secret.issuer || 'No issuer'),
      h('p', { class: 'label' }, secret.label),
      h('p', { class: 'hint' }, details)),
    h('div', { class: 'now' }, code, secret.type === 'hotp' ? counter : h('div', { class: 'timer' }, counter, bar)),
    h('div', { class: 'actions' },
      timer,
      copy,
      h('button', { type: 'button', 'aria-label': `Rename ${name}`, onclick: () => rename(secret) }, 'Rename'),
      h('button', { type: 'button', class: 'danger', 'aria-label': `Delete ${name}`, onclick: () => remove(secret) }, 'Delete')));
  if (secret.type !== 'hotp') {
    live.set(secret.id, { deadline: 0, period: secret.period, busy: false, els: { code, count: counter, bar, copy } });
  }
  return item;
}

async function copyCode(output) {
  const value = output.dataset.code;
  if (!value) return;
  if (await copyText(value)) announce('Code copied.');
  else {
    selectText(output);
    announce('The browser refused the clipboard: the code is selected, press Ctrl+C.');
  }
}

let filterTimer = null;
$('#filter-q').addEventListener('input', () => {
  clearTimeout(filterTimer);
  filterTimer = setTimeout(() => loadSecrets(), 250);
});
$('#filter-issuer').addEventListener('change', () => loadSecrets());
$('#filter-form').addEventListener('submit', (event) => {
  event.preventDefault();
  loadSecrets();
});
$('#secrets-more').addEventListener('click', () => loadSecrets(true));

function rename(secret) {
  const dialog = $('#dlg-rename');
  $('#rename-label').value = secret.label;
  $('#rename-issuer').value = secret.issuer ?? '';
  $('#rename-error').textContent = '';
  dialog.returnValue = '';
  dialog.showModal();
  const form = dialog.querySelector('form');
  const onSubmit = async (event) => {
    if (event.submitter?.value !== 'ok') return;
    event.preventDefault();
    const issuer = $('#rename-issuer').value.trim();
    try {
      await call('PATCH', `/api/v2/totp/secrets/${encodeURIComponent(secret.id)}`, {
        json: { label: $('#rename-label').value.trim(), issuer: issuer === '' ? null : issuer },
      });
    } catch (error) {
      $('#rename-error').textContent = error.message;
      return;
    }
    dialog.close('ok');
    announce('Renamed.');
    loadSecrets();
  };
  form.addEventListener('submit', onSubmit);
  dialog.addEventListener('close', () => form.removeEventListener('submit', onSubmit), { once: true });
}

async function remove(secret) {
  const name = secret.issuer ? `${secret.issuer}: ${secret.label}` : secret.label;
  if (!await confirmDialog(`Delete “${name}”? Its codes can no longer be read here; this cannot be undone.`, 'Delete')) return;
  try {
    await call('DELETE', `/api/v2/totp/secrets/${encodeURIComponent(secret.id)}`);
    announce(`Deleted ${name}.`);
  } catch (error) {
    announce(error.message, 'error');
  }
  loadSecrets();
}

// ---------------------------------------------------------------------------
// Adding

function showResult(...content) {
  const body = $('#add-result-body');
  body.replaceChildren(...content);
  $('#add-result').hidden = false;
}

function showError(error) {
  const rows = error.answer?.results;
  showResult(h('p', { class: 'error', role: 'alert' }, error.message), rows ? importTable(rows) : null);
}

function created(secret) {
  const name = secret.issuer ? `${secret.issuer}: ${secret.label}` : secret.label;
  showResult(h('p', { class: 'ok' }, `Added ${name}.`));
  announce(`Added ${name}.`);
}

/** Says an add is under way, replacing the previous add's result. */
function working() {
  showResult(h('p', { class: 'hint' }, 'Working…'));
}

$('#uri-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  working();
  try {
    const answer = await call('POST', '/api/v2/totp/secrets', { json: { uri: $('#uri-input').value.trim() } });
    $('#uri-input').value = '';
    created(answer.totp_secret);
  } catch (error) {
    showError(error);
  }
});

$('#manual-type').addEventListener('change', () => {
  const hotp = $('#manual-type').value === 'hotp';
  $('#manual-period-field').hidden = hotp;
  $('#manual-counter-field').hidden = !hotp;
});

$('#manual-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const hotp = $('#manual-type').value === 'hotp';
  const secretText = $('#manual-secret').value.trim();
  const request = {
    label: $('#manual-label').value.trim(),
    issuer: $('#manual-issuer').value.trim() || undefined,
    algorithm: $('#manual-algorithm').value,
    digits: Number($('#manual-digits').value),
    type: hotp ? 'hotp' : 'totp',
  };
  if (hotp) request.counter = Number($('#manual-counter').value || 0);
  else request.period = Number($('#manual-period').value || 30);
  if (secretText) request.secret = secretText;
  else request.qr = 'svg';
  working();
  try {
    const answer = await call('POST', '/api/v2/totp/secrets', { json: request });
    $('#manual-form').reset();
    $('#manual-type').dispatchEvent(new Event('change'));
    created(answer.totp_secret);
    if (!secretText) showEnrollment(answer.totp_secret);
  } catch (error) {
    showError(error);
  }
});

/** The generated secret's QR code and URI, in the shown-once dialog. */
function showEnrollment(secret) {
  const qr = secret.qr ? qrFromSvg(secret.qr) : null;
  if (qr) qr.setAttribute('aria-label', 'QR code to scan into the service or an authenticator app');
  const uri = h('code', { class: 'secret-text', id: 'once-uri' }, secret.uri ?? '');
  const raw = h('code', { class: 'secret-text' }, secret.secret);
  showOnce('Scan this into the service', [
    qr,
    h('p', {}, 'Or give it the URI:'), uri,
    h('button', { type: 'button', onclick: () => copyOrSelect(uri, 'URI') }, 'Copy URI'),
    h('p', {}, 'Or the secret (base32):'), raw,
  ]);
}

async function copyOrSelect(el, what) {
  if (await copyText(el.textContent)) announce(`${what} copied.`);
  else {
    selectText(el);
    announce(`The browser refused the clipboard: the ${what} is selected, press Ctrl+C.`);
  }
}

function showOnce(title, content) {
  const dialog = $('#dlg-once');
  $('#dlg-once-title').textContent = title;
  $('#dlg-once-body').replaceChildren(...content.filter(Boolean));
  dialog.showModal();
}

$('#dlg-once-close').addEventListener('click', () => {
  clear($('#dlg-once-body'));
  $('#dlg-once').close();
});
// Escape closes it too; either way what it showed leaves the page.
$('#dlg-once').addEventListener('close', () => clear($('#dlg-once-body')));

function importTable(results) {
  return h('div', { class: 'table-wrap', tabindex: 0, role: 'region', 'aria-label': 'Import results' },
    h('table', {},
      h('thead', {}, h('tr', {}, ['#', 'Outcome', 'Issuer', 'Label', 'Message'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, results.map((r) => h('tr', { class: `outcome-${r.outcome}` },
        h('td', {}, String(r.index + 1)), h('td', {}, r.outcome), h('td', {}, r.issuer ?? ''), h('td', {}, r.label ?? ''), h('td', {}, r.message ?? ''))))));
}

function importSummary(answer) {
  const parts = [`${answer.created} created`, `${answer.duplicates} duplicate${answer.duplicates === 1 ? '' : 's'}`, `${answer.invalid} invalid`];
  announce(`Import: ${parts.join(', ')}.`);
  showResult(h('p', { class: answer.invalid ? 'warning' : 'ok' }, `Import: ${parts.join(', ')}.`), importTable(answer.results));
}

async function importImage(file) {
  if (!file) return;
  if (!IMAGE_TYPES.has(file.type)) {
    showResult(h('p', { class: 'error', role: 'alert' }, `“${file.name || 'The pasted item'}” is not a PNG, JPEG or WebP image.`));
    return;
  }
  $('#drop-zone').classList.add('busy');
  working();
  try {
    const answer = await call('POST', '/api/v2/totp/secrets/import', { body: file, contentType: file.type });
    importSummary(answer);
  } catch (error) {
    showError(error);
  } finally {
    $('#drop-zone').classList.remove('busy');
  }
}

const zone = $('#drop-zone');
zone.addEventListener('dragover', (event) => {
  event.preventDefault();
  zone.classList.add('over');
});
zone.addEventListener('dragleave', () => zone.classList.remove('over'));
zone.addEventListener('drop', (event) => {
  event.preventDefault();
  zone.classList.remove('over');
  importImage(event.dataTransfer?.files?.[0]);
});
// A screenshot pasted anywhere on the Add page (not into a text field).
document.addEventListener('paste', (event) => {
  if (state.view !== 'add' || !signedIn()) return;
  const file = [...(event.clipboardData?.files ?? [])].find((f) => f.type.startsWith('image/'));
  if (!file) return;
  event.preventDefault();
  importImage(file);
});
$('#qr-file').addEventListener('change', (event) => {
  importImage(event.target.files[0]);
  event.target.value = '';
});

$('#export-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const file = $('#export-file').files[0];
  if (!file) return;
  const password = $('#export-password').value;
  working();
  const request = { format: 'auto', data: toBase64(await file.arrayBuffer()), encoding: 'base64' };
  if (password) request.password = password;
  try {
    const answer = await call('POST', '/api/v2/totp/secrets/import', { json: request });
    $('#export-form').reset();
    importSummary(answer);
  } catch (error) {
    showError(error);
  }
});

// ---------------------------------------------------------------------------
// API keys (owner keys)

async function loadKeys() {
  try {
    await refreshAll();
    const scope = $('#key-scope-list');
    scope.replaceChildren(...[...state.all.values()].map((s) =>
      h('label', { class: 'inline' }, h('input', { type: 'checkbox', value: s.id, name: 'key-secret' }), s.issuer ? `${s.issuer}: ${s.label}` : s.label)));
    const answer = await call('GET', '/api/v2/keys');
    const body = $('#keys-table tbody');
    body.replaceChildren(...answer.api_keys.map(keyRow));
  } catch (error) {
    announce(error.message, 'error');
  }
}

function keyRow(key) {
  const scope = key.secret_ids ? `${key.secret_ids.length} listed` : 'All';
  const revoked = Boolean(key.revoked_at);
  return h('tr', { class: revoked ? 'revoked' : undefined },
    h('td', {}, h('code', {}, key.key_id)),
    h('td', {}, key.name || '—'),
    h('td', {}, key.role),
    h('td', {}, scope),
    h('td', {}, when(key.created_at)),
    h('td', {}, key.expires_at ? when(key.expires_at) : 'never'),
    h('td', {}, when(key.last_used_at)),
    h('td', {}, revoked ? `revoked ${when(key.revoked_at)}` : h('button', {
      type: 'button', class: 'danger', 'aria-label': `Revoke ${key.key_id}`,
      onclick: async () => {
        if (!await confirmDialog(`Revoke ${key.key_id}${key.name ? ` (${key.name})` : ''}? Whoever uses it is refused from now on.`, 'Revoke')) return;
        try {
          await call('DELETE', `/api/v2/keys/${encodeURIComponent(key.key_id)}`);
          announce(`Revoked ${key.key_id}.`);
        } catch (error) {
          announce(error.message, 'error');
        }
        if (session) loadKeys();
      },
    }, 'Revoke')));
}

$('#key-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const request = { role: $('#key-role').value };
  const name = $('#key-name').value.trim();
  if (name) request.name = name;
  const expires = localInputToRfc3339($('#key-expires').value);
  if (expires) request.expires_at = expires;
  if (document.querySelector('input[name="key-scope"]:checked').value === 'some') {
    request.secret_ids = [...document.querySelectorAll('input[name="key-secret"]:checked')].map((box) => box.value);
  }
  try {
    const answer = await call('POST', '/api/v2/keys', { json: request });
    $('#key-form').reset();
    const whole = h('code', { class: 'secret-text', id: 'once-key' }, `${answer.api_key.key_id}.${answer.secret}`);
    showOnce(`New ${answer.api_key.role} key`, [
      h('p', {}, 'The whole key, for Authorization: Bearer or this console:'), whole,
      h('button', { type: 'button', onclick: () => copyOrSelect(whole, 'key') }, 'Copy key'),
      h('p', {}, 'Or as the SDKs take it:'),
      h('dl', {},
        h('dt', {}, 'sb-api-key-id'), h('dd', {}, h('code', {}, answer.api_key.key_id)),
        h('dt', {}, 'sb-api-secret-key'), h('dd', {}, h('code', { class: 'secret-text' }, answer.secret))),
    ]);
    loadKeys();
  } catch (error) {
    announce(error.message, 'error');
  }
});

// ---------------------------------------------------------------------------
// Audit log (owner and admin keys)

function auditQuery() {
  return {
    action: $('#audit-action').value,
    secret_id: $('#audit-secret').value,
    key_id: $('#audit-key').value.trim(),
    since: localInputToRfc3339($('#audit-since').value),
    until: localInputToRfc3339($('#audit-until').value),
    limit: PAGE_SIZE,
  };
}

async function loadAudit(fresh) {
  const load = ++auditLoad;
  try {
    if (fresh) {
      await refreshAll();
      const select = $('#audit-secret');
      const chosen = select.value;
      select.replaceChildren(h('option', { value: '' }, 'Any'), ...[...state.all.values()].map((s) =>
        h('option', { value: s.id }, s.issuer ? `${s.issuer}: ${s.label}` : s.label)));
      select.value = state.all.has(chosen) ? chosen : '';
    }
    const query = auditQuery();
    if (!fresh) query.cursor = state.auditCursor;
    const answer = await call('GET', '/api/v2/audit', { query });
    if (load !== auditLoad) return;
    const body = $('#audit-table tbody');
    if (fresh) clear(body);
    for (const event of answer.events) body.append(auditRow(event));
    state.auditCursor = answer.next_cursor ?? null;
    $('#audit-more').hidden = !state.auditCursor;
    $('#audit-empty').hidden = body.children.length > 0;
  } catch (error) {
    announce(error.message, 'error');
  }
}

function auditRow(event) {
  const secret = event.secret_id ? state.all.get(event.secret_id) : null;
  const secretName = secret ? (secret.issuer ? `${secret.issuer}: ${secret.label}` : secret.label) : event.secret_id;
  return h('tr', { class: `outcome-${event.outcome}` },
    h('td', {}, h('time', { datetime: event.at }, when(event.at))),
    h('td', {}, event.action),
    h('td', {}, event.outcome),
    h('td', { title: event.secret_id ?? undefined }, secretName ?? '—'),
    h('td', {}, event.key_id ? h('code', {}, event.key_id) : '—', event.role ? ` (${event.role})` : ''),
    h('td', {}, [event.remote_addr, event.user_agent].filter(Boolean).join(' · ') || '—'));
}

$('#audit-form').addEventListener('submit', (event) => {
  event.preventDefault();
  loadAudit(true);
});
$('#audit-more').addEventListener('click', () => loadAudit(false));

// A last guard: an error nobody caught is shown rather than lost.
window.addEventListener('unhandledrejection', (event) => {
  const reason = event.reason;
  announce(reason instanceof ApiError ? reason.message : `Unexpected error: ${reason?.message ?? reason}`, 'error');
});

$('#signin-key-id').focus();
