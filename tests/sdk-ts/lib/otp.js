// An independent TOTP reference (RFC 4226 / RFC 6238) on node:crypto, for
// checking the codes totpd hands out. It shares nothing with totpd.

import { createHmac } from 'node:crypto';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const HASHES = { SHA1: 'sha1', SHA256: 'sha256', SHA512: 'sha512' };

// RFC 4648 base32, lenient the way real services hand it out: any case,
// spaces, hyphens and padding ignored.
export function base32Decode(text) {
  const clean = text.replace(/[\s=-]/g, '').toUpperCase();
  let bits = 0;
  let value = 0;
  const out = [];
  for (const ch of clean) {
    const idx = ALPHABET.indexOf(ch);
    if (idx < 0) throw new Error(`not base32: ${JSON.stringify(ch)} in ${JSON.stringify(text)}`);
    value = (value << 5) | idx;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >>> bits) & 0xff);
    }
  }
  return Buffer.from(out);
}

export function base32Encode(bytes) {
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += ALPHABET[(value >>> bits) & 31];
    }
  }
  if (bits > 0) out += ALPHABET[(value << (5 - bits)) & 31];
  return out;
}

// RFC 4226 section 5.3, with the hash RFC 6238 allows.
export function hotp(key, counter, digits, algorithm) {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac(HASHES[algorithm], key).update(msg).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const binary = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(binary % 10 ** digits).padStart(digits, '0');
}

export function totpAt(secretB32, unix, { algorithm = 'SHA1', digits = 6, period = 30 } = {}) {
  return hotp(base32Decode(secretB32), Math.floor(unix / period), digits, algorithm);
}

// Every "code expires_in" pair a correct server could answer when it read
// its clock at some instant between `before` and `after` (ms since the
// epoch, read around the request): one per whole second in between.
export function allowedCodeResponses(secretB32, before, after, opts = {}) {
  const period = opts.period ?? 30;
  const allowed = new Map();
  for (let unix = Math.floor(before / 1000); unix <= Math.floor(after / 1000); unix++) {
    allowed.set(`${totpAt(secretB32, unix, opts)} ${period - (unix % period)}`, unix);
  }
  return allowed;
}
