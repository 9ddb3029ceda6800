// One live `totpd serve` per test file, shared by the SDK suites: started
// before the first test (an owner key made before it starts), with every
// code the file's clients receive recorded; after the last test, stopped
// with SIGTERM (it must exit 0), the codes checked against its audit log
// (and, if asked, its database file checked to hold none of what the
// clients received), and its files removed. The log is kept when a test
// failed (`suite.failed = true`): its path is in the failure message.

import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before } from 'node:test';

import { Received, checkDatabaseHoldsNoneOfIt, checkEveryCodeRecordedOnce } from './audit.js';
import { TotpdServer } from './server.js';

export function liveServer(ownerAccount, { checkDatabase = false } = {}) {
  const suite = { server: null, received: new Received(), failed: false };
  before(async () => {
    suite.server = new TotpdServer();
    // The first key is made before serve starts, the rest while it runs.
    suite.server.createKey(ownerAccount);
    await suite.server.start();
    suite.received.install();
  });
  after(async () => {
    const { server, received } = suite;
    if (!server) return;
    received.uninstall();
    const problems = await checkEveryCodeRecordedOnce(received, server.baseURL);
    const exit = await server.stop();
    if (checkDatabase) {
      problems.push(...checkDatabaseHoldsNoneOfIt(received, join(server.dataDir, 'totpd.db')));
    }
    assert.ok(received.codes.length > 0, 'the suite received no code: nothing was checked');
    assert.deepEqual(problems, [], `audit log check of ${received.codes.length} codes received`);
    rmSync(server.dataDir, { recursive: true, force: true });
    if (!suite.failed) rmSync(dirname(server.logPath), { recursive: true, force: true });
    assert.deepEqual(exit, { code: 0, signal: null }, `totpd serve should exit 0 on SIGTERM; its output:\n${server.logText()}`);
  });
  return suite;
}
