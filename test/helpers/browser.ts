import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

/** Debian's Chromium (apt package `chromium`; .ci/run installs it when missing). */
export const CHROMIUM = '/usr/bin/chromium';

/**
 * Where screenshots go: the README's docs/console/<page>.png with `EDDY_SCREENSHOTS=docs`
 * (refreshing them is a deliberate act, not a side effect of every test run), else a temporary
 * directory, so every run still takes each one.
 */
export const SCREENSHOT_DIR =
  process.env.EDDY_SCREENSHOTS === 'docs' ? fileURLToPath(new URL('../../../docs/console/', import.meta.url)) : path.join(os.tmpdir(), 'eddy-console-screenshots');

/**
 * Why the browser tests are skipped, if they are: only when asked (`EDDY_SKIP_BROWSER=1`). A
 * missing Chromium is not a reason: the tests then fail, saying so (.ci/run installs it).
 */
export function browserSkip(): string | false {
  return process.env.EDDY_SKIP_BROWSER === '1' ? 'EDDY_SKIP_BROWSER=1' : false;
}

/**
 * A headless Chromium on one page, which records every request it makes to a host other than the
 * broker's (`foreign`): the console must load nothing from elsewhere (no CDN, no fonts), so a test
 * fails on any. 401 answers are recorded too, to check that none would open the browser's own
 * Basic dialog.
 */
export interface ConsoleBrowser {
  browser: Browser;
  context: BrowserContext;
  page: Page;
  foreign: string[];
  challenges: string[];
  /** Uncaught errors of the page's scripts and console.error lines. */
  errors: string[];
  close(): Promise<void>;
}

export async function openBrowser(brokerUrl: string): Promise<ConsoleBrowser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const context = await browser.newContext({ viewport: { width: 1360, height: 860 }, deviceScaleFactor: 1 });
  const broker = new URL(brokerUrl).host;
  const foreign: string[] = [];
  const challenges: string[] = [];
  const errors: string[] = [];
  context.on('request', (request) => {
    const url = new URL(request.url());
    if (url.protocol === 'data:' || url.protocol === 'blob:') return;
    if (url.host !== broker) foreign.push(request.url());
  });
  context.on('response', (response) => {
    if (response.status() === 401) challenges.push(response.headers()['www-authenticate'] ?? '');
  });
  const page = await context.newPage();
  page.on('pageerror', (err) => errors.push(`${err.message}\n${err.stack ?? ''}`));
  page.on('console', (message) => {
    // A refused request is logged by Chromium itself; the test checks those answers on its own.
    if (message.type() === 'error' && !/Failed to load resource/.test(message.text())) errors.push(message.text());
  });
  // The console asks before a kick, an end or a purge.
  page.on('dialog', (dialog) => void dialog.accept().catch(() => {}));
  return {
    browser,
    context,
    page,
    foreign,
    challenges,
    errors,
    async close() {
      await context.close().catch(() => {});
      await browser.close().catch(() => {});
    },
  };
}

/** Signs in on the console's login form with a password-file user. */
export async function logIn(page: Page, brokerUrl: string, user: string, password: string): Promise<void> {
  await page.goto(`${brokerUrl}/#/overview`);
  await page.getByTestId('login-user').fill(user);
  await page.getByTestId('login-password').fill(password);
  await page.getByTestId('login-submit').click();
  await page.getByTestId('nav-overview').waitFor();
}

export async function screenshot(page: Page, name: string): Promise<void> {
  fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOT_DIR, `${name}.png`) });
}
