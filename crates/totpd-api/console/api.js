// The console's only way to the server: the JSON API at this origin, with
// the API key in headers. The key lives in this module's variable and
// nowhere else (no storage, no cookie, no URL), so a reload or a closed tab
// forgets it, and no request the browser makes on its own (a link, a form,
// an image from another site) can carry it.

let credentials = null;

/** An error answer of the API: its HTTP status, code and sentence. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * Reads "key_id.secret" (the bearer form) or a key id and a secret typed
 * apart. Returns null when either part is missing.
 */
export function parseKey(keyIdField, secretField) {
  let keyId = keyIdField.trim();
  let secret = secretField.trim();
  if (secret === '') {
    const dot = keyId.indexOf('.');
    if (dot < 0) return null;
    secret = keyId.slice(dot + 1);
    keyId = keyId.slice(0, dot);
  }
  if (keyId === '' || secret === '') return null;
  return { keyId, secret };
}

export function setCredentials(key) {
  credentials = key;
}

export function forget() {
  credentials = null;
}

export function signedIn() {
  return credentials !== null;
}

/**
 * One API call. `json` is sent as a JSON body; `body` as is, with
 * `contentType`. Resolves to the parsed answer; rejects with ApiError. A 401
 * on a signed-in session fires `totpd:unauthorized` on window (the key was
 * revoked or expired meanwhile), so the page can sign out.
 */
export async function call(method, path, { query, json, body, contentType } = {}) {
  if (!credentials) throw new ApiError(401, 'unauthorized', 'Not signed in.');
  const headers = {
    'sb-api-key-id': credentials.keyId,
    'sb-api-secret-key': credentials.secret,
    accept: 'application/json',
  };
  let payload;
  if (json !== undefined) {
    headers['content-type'] = 'application/json';
    payload = JSON.stringify(json);
  } else if (body !== undefined) {
    headers['content-type'] = contentType;
    payload = body;
  }
  let url = path;
  if (query) {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) {
      if (value !== undefined && value !== null && value !== '') params.set(name, String(value));
    }
    const text = params.toString();
    if (text) url += `?${text}`;
  }
  let response;
  try {
    // credentials: 'omit' so no cookie ever rides along; cache: 'no-store'
    // so no answer (a code, a key secret) is kept by the browser's cache.
    response = await fetch(url, { method, headers, body: payload, credentials: 'omit', cache: 'no-store', referrerPolicy: 'no-referrer' });
  } catch {
    throw new ApiError(0, 'network', 'The server did not answer. Check that totpd is running and try again.');
  }
  let answer = null;
  try {
    answer = await response.json();
  } catch {
    // Not JSON: reported below from the status.
  }
  if (response.ok && answer && answer.status === 'OK') return answer;
  const code = answer?.error ?? 'http';
  let message = typeof answer?.message === 'string' ? answer.message : `The server answered HTTP ${response.status}.`;
  if (response.status === 401 && credentials) {
    window.dispatchEvent(new CustomEvent('totpd:unauthorized'));
  }
  if (response.status === 429) {
    const wait = response.headers.get('retry-after');
    if (wait) message += ` Retry in ${wait} s.`;
  }
  const error = new ApiError(response.status, code, message);
  error.answer = answer;
  throw error;
}
