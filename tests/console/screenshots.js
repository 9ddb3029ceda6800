// Screenshots of every console page for the README: desktop (1280x800)
// and phone (390x844), light and dark, into docs/console/. Run by hand
// after a change to the console's look:
//
//   TOTPD_BIN=target/debug/totpd node tests/console/screenshots.js
//
// The server is a fresh one with a few made-up secrets; nothing real is
// shown.

import { mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';

import { launch, openPage } from './lib/browser.js';
import { REPO_ROOT, TotpdServer, api } from './lib/server.js';

const OUT = join(REPO_ROOT, 'docs', 'console');
const SIZES = { desktop: { width: 1280, height: 800 }, phone: { width: 390, height: 844 } };
const SAMPLES = [
  { label: 'alice@example.com', issuer: 'GitHub' },
  { label: 'deploy-bot', issuer: 'AWS', digits: 8 },
  { label: 'ops@example.com', issuer: 'Intranet', period: 60 },
  { label: 'billing', issuer: 'Stripe' },
  { label: 'backup codes', issuer: 'Acme', type: 'hotp' },
];

const server = new TotpdServer();
const owner = server.createKey('demo');
await server.start();
const browser = await launch();
const problems = [];
try {
  for (const sample of SAMPLES) await api(server, owner, 'POST', '/api/v2/totp/secrets', sample);
  await api(server, owner, 'POST', '/api/v2/keys', { name: 'deploy agent', role: 'agent' });
  await api(server, owner, 'POST', '/api/v2/keys', { name: 'login checker', role: 'verifier' });
  mkdirSync(OUT, { recursive: true });
  for (const [size, viewport] of Object.entries(SIZES)) {
    for (const colorScheme of ['light', 'dark']) {
      const opened = await openPage(browser, { viewport, colorScheme });
      const { page } = opened;
      const shot = (name) => page.screenshot({ path: join(OUT, `${name}-${size}-${colorScheme}.png`) });
      await page.goto(`${server.baseURL}/`);
      await shot('signin');
      await page.fill('#signin-key-id', `${owner.key_id}.${owner.secret}`);
      await page.click('#signin-form button[type="submit"]');
      await page.locator('li.secret output.code[data-code]').first().waitFor();
      await page.waitForTimeout(500);
      await shot('secrets');
      for (const view of ['add', 'keys', 'audit']) {
        await page.locator(`#nav button[data-view="${view}"]`).click();
        await page.waitForTimeout(700);
        // The focus ring of the heading the page moves focus to is not news.
        await page.evaluate(() => document.activeElement?.blur());
        await shot(view);
      }
      problems.push(...opened.problems);
      await opened.context.close();
    }
  }
} finally {
  await browser.close();
  await server.stop();
  rmSync(server.dataDir, { recursive: true, force: true });
  rmSync(dirname(server.logPath), { recursive: true, force: true });
}
if (problems.length) {
  console.error(problems.join('\n'));
  process.exit(1);
}
console.log(`screenshots in ${OUT}`);
