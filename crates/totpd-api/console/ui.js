// DOM helpers. Text from the server (labels, issuers, messages) only ever
// becomes text nodes: nothing here parses HTML.

/** `h('li', {class: 'x', onclick: f}, 'text', child)`: an element. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) el.addEventListener(name.slice(2), value);
    else if (name === 'text') el.textContent = value;
    else if (value === true) el.setAttribute(name, '');
    else el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

export const $ = (selector) => document.querySelector(selector);

export function clear(el) {
  el.replaceChildren();
}

/** "123456" as "123 456", "12345678" as "1234 5678", for reading aloud and by eye. */
export function groupCode(code) {
  const half = code.length / 2;
  return Number.isInteger(half) ? `${code.slice(0, half)} ${code.slice(half)}` : code;
}

/** A server time (RFC 3339) in the reader's locale, or "—". */
export function when(text) {
  if (!text) return '—';
  const at = new Date(text);
  return Number.isNaN(at.getTime()) ? text : at.toLocaleString();
}

/** A `datetime-local` input's value as RFC 3339 (UTC), or undefined. */
export function localInputToRfc3339(value) {
  if (!value) return undefined;
  const at = new Date(value);
  return Number.isNaN(at.getTime()) ? undefined : at.toISOString();
}

/** Bytes as base64, in chunks (a large file would overflow the call stack). */
export function toBase64(buffer) {
  const bytes = new Uint8Array(buffer);
  let text = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

let statusTimer = null;

/** A passing message in the status line (read by screen readers). */
export function announce(message, kind = 'info') {
  const status = $('#status');
  status.textContent = message;
  status.dataset.kind = kind;
  clearTimeout(statusTimer);
  if (message) statusTimer = setTimeout(() => { status.textContent = ''; }, kind === 'error' ? 15000 : 6000);
}

/** Copies text; false when the browser refuses (not a secure context). */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}

/** Selects an element's text, for a manual copy when the clipboard is refused. */
export function selectText(el) {
  const range = document.createRange();
  range.selectNodeContents(el);
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
}

/** Asks in the confirmation dialog; resolves to true on the confirming button. */
export function confirmDialog(text, confirmLabel) {
  const dialog = $('#dlg-confirm');
  $('#dlg-confirm-text').textContent = text;
  $('#dlg-confirm-ok').textContent = confirmLabel;
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
  });
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/**
 * The enrollment QR code the server drew, rebuilt element by element: only
 * an <svg> with <rect> and <path> children and their geometry attributes
 * are copied, so the markup can neither run script nor load anything, and
 * no image URL (which would carry the secret) is made.
 */
export function qrFromSvg(text) {
  const parsed = new DOMParser().parseFromString(text, 'image/svg+xml');
  const source = parsed.documentElement;
  if (source.namespaceURI !== SVG_NS || source.localName !== 'svg') return null;
  const svg = document.createElementNS(SVG_NS, 'svg');
  for (const name of ['viewBox', 'shape-rendering']) {
    const value = source.getAttribute(name);
    if (value !== null) svg.setAttribute(name, value);
  }
  for (const child of source.children) {
    if (child.localName !== 'rect' && child.localName !== 'path') continue;
    const copy = document.createElementNS(SVG_NS, child.localName);
    for (const name of ['width', 'height', 'x', 'y', 'd', 'fill']) {
      const value = child.getAttribute(name);
      if (value !== null) copy.setAttribute(name, value);
    }
    svg.append(copy);
  }
  svg.setAttribute('role', 'img');
  svg.setAttribute('class', 'qr');
  return svg;
}
