// Start and stop a live `totpd serve` for the SDK tests.
//
// The binary comes from TOTPD_BIN; a relative path is taken relative to the
// repository root, and the default is target/debug/totpd. The server gets a
// fresh data dir, a free loopback port and a log file that failing tests
// quote.

import { spawn, execFileSync } from 'node:child_process';
import { accessSync, constants, mkdtempSync, openSync, readFileSync, statSync, closeSync, writeSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

const STARTUP_TIMEOUT_MS = 30_000;
const SHUTDOWN_TIMEOUT_MS = 10_000;

export function totpdBin() {
  const raw = process.env.TOTPD_BIN || 'target/debug/totpd';
  const path = isAbsolute(raw) ? raw : join(REPO_ROOT, raw);
  try {
    accessSync(path, constants.X_OK);
  } catch {
    throw new Error(
      `totpd binary not found or not executable at ${path} ` +
        '(build it with `cargo build --workspace --bins`, or set TOTPD_BIN)',
    );
  }
  return path;
}

// Our environment minus every TOTPD_ variable, so a developer's
// TOTPD_DATABASE_URL or TOTPD_MASTER_KEY cannot reach a fresh server.
function serverEnv() {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('TOTPD_')) env[k] = v;
  }
  env.RUST_BACKTRACE ??= '1';
  return env;
}

function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.on('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// `totpd keys create --account NAME --json --data-dir DIR`, shape-checked.
export function createKey(binary, dataDir, account) {
  const args = ['keys', 'create', '--account', account, '--json', '--data-dir', dataDir];
  let stdout;
  try {
    stdout = execFileSync(binary, args, {
      env: serverEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
      encoding: 'utf8',
      timeout: 30_000,
    });
  } catch (err) {
    throw new Error(
      `\`totpd ${args.join(' ')}\` failed (${err.status ?? err.signal ?? err.code})\n` +
        `stdout:\n${err.stdout ?? ''}\nstderr:\n${err.stderr ?? ''}`,
    );
  }
  let key;
  try {
    key = JSON.parse(stdout);
  } catch (err) {
    throw new Error(`\`totpd keys create --json\` must print exactly one JSON object, got (${err.message}):\n${stdout}`);
  }
  for (const field of ['account', 'account_id', 'key_id', 'secret']) {
    if (typeof key?.[field] !== 'string' || key[field] === '') {
      throw new Error(`\`totpd keys create --json\` printed ${stdout.trim()}, field ${field} is missing or empty`);
    }
  }
  if (key.account !== account) throw new Error(`asked for account ${account}, got ${key.account}`);
  return key;
}

export class TotpdServer {
  constructor() {
    this.binary = totpdBin();
    this.dataDir = mkdtempSync(join(tmpdir(), 'totpd-ts-data-'));
    this.logPath = join(mkdtempSync(join(tmpdir(), 'totpd-ts-log-')), 'serve.log');
    this.port = null;
    this.proc = null;
    this.exit = null;
  }

  get baseURL() {
    return `http://127.0.0.1:${this.port}`;
  }

  createKey(account) {
    return createKey(this.binary, this.dataDir, account);
  }

  logSize() {
    try {
      return statSync(this.logPath).size;
    } catch {
      return 0;
    }
  }

  logText(start = 0, maxLines = 400) {
    let text;
    try {
      text = readFileSync(this.logPath).subarray(start).toString('utf8');
    } catch {
      return '(no log file)';
    }
    let lines = text.split('\n');
    if (lines.at(-1) === '') lines.pop();
    if (lines.length > maxLines) {
      lines = [`... (${lines.length - maxLines} earlier lines in ${this.logPath})`, ...lines.slice(-maxLines)];
    }
    return lines.length ? lines.join('\n') : '(no output)';
  }

  // Start serve and wait for GET /healthz to answer 200. A port taken
  // between our probe and serve's bind makes serve exit: retry elsewhere.
  async start(attempts = 3) {
    const failures = [];
    for (let i = 0; i < attempts; i++) {
      this.port = await freePort();
      const fd = openSync(this.logPath, 'a');
      writeSync(fd, `=== totpd serve on 127.0.0.1:${this.port} ===\n`);
      this.proc = spawn(
        this.binary,
        ['serve', '--listen', `127.0.0.1:${this.port}`, '--data-dir', this.dataDir, '--no-bootstrap'],
        { env: serverEnv(), stdio: ['ignore', fd, fd] },
      );
      closeSync(fd);
      this.exit = null;
      this.exited = new Promise((ok) =>
        this.proc.on('exit', (code, signal) => {
          this.exit = { code, signal };
          ok(this.exit);
        }),
      );
      const outcome = await this.#waitHealthy();
      if (outcome === 'healthy') return;
      if (outcome === 'timeout') {
        this.proc.kill('SIGKILL');
        await this.exited;
        throw new Error(`totpd serve did not answer GET /healthz with 200 within ${STARTUP_TIMEOUT_MS / 1000}s; its output:\n${this.logText()}`);
      }
      failures.push(`exited ${JSON.stringify(this.exit)} on port ${this.port}`);
    }
    throw new Error(`totpd serve failed to start (${failures.join('; ')}); its output:\n${this.logText()}`);
  }

  async #waitHealthy() {
    const deadline = Date.now() + STARTUP_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (this.exit) return 'exited';
      try {
        const resp = await fetch(`${this.baseURL}/healthz`, { signal: AbortSignal.timeout(2000) });
        await resp.arrayBuffer();
        if (resp.status === 200) return 'healthy';
      } catch {
        // not listening yet
      }
      await sleep(50);
    }
    return 'timeout';
  }

  // SIGTERM and wait; returns {code, signal}. Killing is the fallback for a
  // server that ignores SIGTERM, and that is reported as an error.
  async stop() {
    if (!this.proc) return null;
    if (this.exit) return this.exit;
    this.proc.kill('SIGTERM');
    const timer = sleep(SHUTDOWN_TIMEOUT_MS).then(() => 'timeout');
    const result = await Promise.race([this.exited, timer]);
    if (result === 'timeout') {
      this.proc.kill('SIGKILL');
      await this.exited;
      throw new Error(`totpd serve did not exit within ${SHUTDOWN_TIMEOUT_MS / 1000}s of SIGTERM; its output:\n${this.logText()}`);
    }
    return result;
  }
}
