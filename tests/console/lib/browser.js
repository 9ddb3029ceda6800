// Chromium (the system's, /usr/bin/chromium or TOTPD_CHROMIUM) driven by
// playwright-core, with every Content-Security-Policy violation the page
// reports collected: a securitypolicyviolation event (seen by an init
// script, which the page's CSP does not apply to) or a console message
// about the policy. The tests fail on any.

import { accessSync, constants } from 'node:fs';
import { chromium } from 'playwright-core';

export function chromiumPath() {
  const path = process.env.TOTPD_CHROMIUM || '/usr/bin/chromium';
  try {
    accessSync(path, constants.X_OK);
  } catch {
    throw new Error(`Chromium not found at ${path} (Debian: apt-get install chromium, or set TOTPD_CHROMIUM)`);
  }
  return path;
}

export async function launch() {
  // --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
  return chromium.launch({ executablePath: chromiumPath(), args: ['--no-sandbox'] });
}

const WATCH_CSP = `
  document.addEventListener('securitypolicyviolation', (event) => {
    window.__totpdCspViolation(JSON.stringify({
      directive: event.violatedDirective,
      blocked: event.blockedURI,
      source: event.sourceFile,
      line: event.lineNumber,
    }));
  });
`;

/**
 * A browser context and page with the CSP watch installed. `problems`
 * collects violations and uncaught page errors as they happen.
 */
export async function openPage(browser, { viewport = { width: 1280, height: 800 }, colorScheme = 'light' } = {}) {
  const context = await browser.newContext({ viewport, colorScheme, deviceScaleFactor: 1 });
  const problems = [];
  await context.exposeFunction('__totpdCspViolation', (text) => problems.push(`CSP violation: ${text}`));
  await context.addInitScript(WATCH_CSP);
  await context.grantPermissions(['clipboard-read', 'clipboard-write']);
  const page = await context.newPage();
  page.on('console', (message) => {
    const text = message.text();
    if (/content security policy|content-security-policy/i.test(text)) problems.push(`console: ${text}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  return { context, page, problems };
}
