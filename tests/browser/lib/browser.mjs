// Debian's Chromium driven by playwright-core, and what every scenario
// shares: a fresh browser context per test whose pages are all watched for
// CSP violations, uncaught page errors and dialogs; helpers for the login
// flow; screenshots into target/browser-artifacts/ (and docs/images/).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before } from 'node:test';

import { chromium } from 'playwright-core';

import { ARTIFACTS, ROOT, startStack } from './stack.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const LAUNCH_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
export const VIEWPORT = { width: 900, height: 700 };
const DOCS_IMAGES = path.join(ROOT, 'docs', 'images');

const CSP_PATTERN = /content[- ]security[- ]policy|trusted ?types|TrustedHTML|TrustedScript/i;

export async function launchBrowser() {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: apt-get install chromium (tests/browser/run.sh does it)`);
  }
  // playwright-core gives every launch its own temporary profile directory
  // (a fresh --user-data-dir) and removes it on close.
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: LAUNCH_ARGS });
}

/**
 * One test's browser context: records, for every page it opens, console
 * messages, uncaught errors and dialogs, and the URLs visited.
 */
export class Session {
  constructor(context, stack) {
    this.context = context;
    this.stack = stack;
    this.console = []; // { type, text, url }
    this.pageErrors = []; // { message, url }
    this.dialogs = []; // { type, message, url }
    this.visited = []; // every main-frame URL
    this.timeline = []; // all of the above as text, in order
    this.watched = new WeakSet();
    context.on('page', (page) => this.watch(page));
  }

  static async open(browser, stack) {
    const context = await browser.newContext({ viewport: VIEWPORT, bypassCSP: false });
    context.setDefaultTimeout(15_000);
    context.setDefaultNavigationTimeout(20_000);
    // Make every CSP violation visible on the console, whatever wording
    // Chromium's own message has. (Playwright evaluates this itself; it is
    // not an inline script in the page's eyes.)
    await context.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) => {
        console.error(
          `Content Security Policy violation (seen by the test): ${e.violatedDirective} blocked ${e.blockedURI || '(inline)'} at ${e.sourceFile}:${e.lineNumber}`,
        );
      });
    });
    return new Session(context, stack);
  }

  watch(page) {
    if (this.watched.has(page)) return page;
    this.watched.add(page);
    const note = (line) => this.timeline.push(`${new Date().toISOString()} ${line}`);
    page.on('console', (msg) => {
      this.console.push({ type: msg.type(), text: msg.text(), url: page.url() });
      note(`console.${msg.type()} on ${page.url()}: ${msg.text()}`);
    });
    page.on('pageerror', (error) => {
      this.pageErrors.push({ message: String(error?.stack ?? error), url: page.url() });
      note(`pageerror on ${page.url()}: ${error}`);
    });
    page.on('dialog', (dialog) => {
      this.dialogs.push({ type: dialog.type(), message: dialog.message(), url: page.url() });
      note(`${dialog.type()} dialog on ${page.url()}: ${dialog.message()}`);
      dialog.dismiss().catch(() => {});
    });
    page.on('framenavigated', (frame) => {
      if (frame !== page.mainFrame()) return;
      this.visited.push(frame.url());
      note(`visit ${frame.url()}`);
    });
    return page;
  }

  async newPage() {
    return this.watch(await this.context.newPage());
  }

  cspViolations() {
    return this.console.filter((m) => CSP_PATTERN.test(m.text));
  }

  /** The checks every scenario ends with. */
  assertClean() {
    const problems = [];
    for (const m of this.cspViolations()) problems.push(`CSP violation on ${m.url}: ${m.text}`);
    for (const e of this.pageErrors) problems.push(`uncaught error on ${e.url}: ${e.message}`);
    for (const d of this.dialogs) problems.push(`unexpected ${d.type} dialog on ${d.url}: ${d.message}`);
    if (problems.length) {
      const errors = this.console.filter((m) => m.type === 'error').map((m) => `  console.error on ${m.url}: ${m.text}`);
      assert.fail([...problems, ...(errors.length ? ['all console errors:', ...errors] : [])].join('\n'));
    }
  }

  async screenshotAll(label) {
    const pages = this.context.pages();
    fs.mkdirSync(path.join(ARTIFACTS, 'failures'), { recursive: true });
    for (const [i, page] of pages.entries()) {
      await page
        .screenshot({ path: path.join(ARTIFACTS, 'failures', `${slug(label)}-${i}.png`) })
        .catch(() => {});
    }
  }

  /** Keeps what the pages printed, for reading after a run. */
  saveConsole(label) {
    const dir = path.join(ARTIFACTS, 'console');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, `${slug(label)}.txt`), `${this.timeline.join('\n')}\n`);
  }

  async close() {
    await this.context.close().catch(() => {});
  }
}

function slug(text) {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 80);
}

/**
 * Per test file: a fresh system and a browser, stopped after the file's
 * tests (also when one fails). `h.withSession(fn)` runs `fn` in a new
 * browser context and then checks it saw no CSP violation, uncaught error
 * or dialog; on failure it keeps a screenshot of each open page.
 */
export function useHarness(name) {
  const h = {
    stack: null,
    browser: null,
    async withSession(label, fn) {
      const session = await Session.open(h.browser, h.stack);
      try {
        await fn(session);
        session.assertClean();
      } catch (e) {
        await session.screenshotAll(`${name}-${label}`);
        const crashed = h.stack.crashed();
        if (crashed.length) e.message += `\n${crashed.join('\n')}`;
        throw e;
      } finally {
        await session.close();
        session.saveConsole(`${name}-${label}`);
      }
      return session;
    },
  };
  before(async () => {
    h.stack = await startStack(name);
    h.browser = await launchBrowser();
  });
  after(async () => {
    await h.browser?.close().catch(() => {});
    await h.stack?.stop();
  });
  return h;
}

/**
 * Saves a screenshot as a test artifact. With `docs`, it is also the
 * committed picture docs/images/<docs>.png — written when that file is
 * missing or BROWSER_TESTS_UPDATE_DOCS=1, so a test run leaves the
 * checkout alone otherwise.
 */
export async function screenshot(page, name, { docs } = {}) {
  const file = path.join(ARTIFACTS, `${name}.png`);
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: file, animations: 'disabled', caret: 'hide' });
  if (docs) {
    const target = path.join(DOCS_IMAGES, `${docs}.png`);
    if (process.env.BROWSER_TESTS_UPDATE_DOCS === '1' || !fs.existsSync(target)) {
      fs.mkdirSync(DOCS_IMAGES, { recursive: true });
      fs.copyFileSync(file, target);
    }
  }
  return file;
}

// ---- the flow, as a user goes through it -----------------------------------

/** Waits until `selector` shows exactly `text` (after trimming). */
export async function waitForText(page, selector, text, timeout = 15_000) {
  try {
    await page.waitForFunction(
      ([s, t]) => document.querySelector(s)?.textContent.trim() === t,
      [selector, text],
      { timeout },
    );
  } catch (e) {
    const actual = await page.locator(selector).first().textContent({ timeout: 1000 }).catch(() => '(missing)');
    throw new Error(`expected ${selector} to show ${JSON.stringify(text)} on ${page.url()}, it shows ${JSON.stringify(actual)}`, { cause: e });
  }
}

/** Opens the app signed out and clicks "Log in"; resolves on the auth server's login page. */
export async function openLoginPage(page, app, issuer) {
  await page.goto(`${app.url}/`);
  const login = page.getByRole('button', { name: 'Log in' });
  await login.waitFor({ state: 'visible' });
  await login.click();
  await page.waitForURL((url) => url.href.startsWith(`${issuer}/login`));
  await page.locator('input[name="username"]').waitFor();
}

/** Fills in and submits the login form. */
export async function submitLogin(page, { username, password }) {
  await page.locator('input[name="username"]').fill(username);
  await page.locator('input[name="password"]').fill(password);
  await Promise.all([page.waitForNavigation({ waitUntil: 'commit' }), page.getByRole('button', { name: 'Sign in' }).click()]);
}

/** The whole login of a first-party app: app → login page → app, signed in. */
export async function logIn(page, stack, user, app = stack.spa) {
  await openLoginPage(page, app, stack.issuer);
  await submitLogin(page, user);
  await waitForText(page, '#whoami', `Signed in as ${user.username}`);
  assert.equal(new URL(page.url()).origin, app.url);
}

/** Adds a note through the app's form and waits for it in the list. */
export async function addNote(page, title, body) {
  await page.locator('#new-title').fill(title);
  await page.locator('#new-body').fill(body);
  await page.getByRole('button', { name: 'Add note' }).click();
  await waitForText(page, '#status', 'Note added.');
  const item = page.locator('#notes > li').filter({ has: page.locator('.note-title', { hasText: title }) });
  await item.first().waitFor();
  return item.first();
}
