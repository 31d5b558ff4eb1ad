// Scenario 7: the browser console shows no CSP violation (and no uncaught
// error) on any page of the flow. Every scenario checks this for the pages
// it visits; this file walks every kind of page in one go — the auth
// server's login, consent, logout, home and error pages, both apps, and
// editing and deleting notes — and proves the check itself can see a
// violation.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Session, addNote, logIn, openLoginPage, submitLogin, useHarness, waitForText } from './lib/browser.mjs';

const h = useHarness('csp');

test('no page of the login, consent, notes and logout flow reports a CSP violation', () =>
  h.withSession('walkthrough', async (s) => {
    const { stack } = h;
    const { partner, spa, issuer, users } = stack;
    const page = await s.newPage();

    // Third-party app: login page, consent page, app.
    await openLoginPage(page, partner, issuer);
    await submitLogin(page, users.alice);
    await page.getByRole('heading', { name: 'Allow access?' }).waitFor();
    await page.locator('button[name="decision"][value="approve"]').click();
    await waitForText(page, '#whoami', 'Signed in as alice');

    // Notes: add, edit, delete.
    const item = await addNote(page, 'Draft', 'first version');
    await item.getByRole('button', { name: 'Edit' }).click();
    await page.locator('form.edit-note input[name="title"]').fill('Final');
    await page.getByRole('button', { name: 'Save' }).click();
    await waitForText(page, '#status', 'Note saved.');
    await page.locator('#notes .note-title', { hasText: 'Final' }).waitFor();
    await page.locator('#notes > li').first().getByRole('button', { name: 'Delete' }).click();
    await waitForText(page, '#status', 'Note deleted.');
    assert.equal(await page.locator('#notes > li').count(), 0);

    // First-party app in the same browser: the session signs in without a form.
    const other = await s.newPage();
    await other.goto(`${spa.url}/`);
    await other.getByRole('button', { name: 'Log in' }).click();
    await waitForText(other, '#whoami', 'Signed in as alice');
    await other.close();

    // Log out of the third-party app through the logout page.
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByRole('button', { name: 'Sign out' }).click();
    await waitForText(page, '#status', 'You are signed out.');
    await page.getByRole('button', { name: 'Log in' }).waitFor({ state: 'visible' });

    // The auth server's other pages: home, an error page.
    await page.goto(`${issuer}/`);
    await page.goto(`${issuer}/authorize?client_id=no-such-client&response_type=code`);
    await page.locator('p.error[role="alert"]').waitFor();
    // Without a session the logout page still asks (INTERFACE.md: GET
    // /logout shows a confirmation form); confirming ends at "Signed out".
    await page.goto(`${issuer}/logout`);
    await page.getByRole('heading', { name: 'Sign out?' }).waitFor();
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Signed out' }).waitFor();

    const seen = (prefix) => s.visited.some((url) => url.startsWith(prefix));
    for (const prefix of [`${issuer}/login?`, `${issuer}/authorize?`, `${issuer}/logout?`, `${partner.url}/callback?`, `${partner.url}/?state=`, `${spa.url}/callback?`]) {
      assert.ok(seen(prefix), `the walk visited ${prefix}`);
    }
    assert.deepEqual(s.cspViolations(), [], 'no CSP violation on the console');
    assert.deepEqual(s.pageErrors, [], 'no uncaught error');
  }));

test('control: the console watcher does report CSP and Trusted Types violations', async () => {
  const { stack } = h;
  const s = await Session.open(h.browser, stack);
  try {
    const page = await s.newPage();
    await logIn(page, stack, stack.users.bob);
    // The app: an image from elsewhere is blocked (img-src 'self'), and an
    // HTML sink throws (require-trusted-types-for 'script').
    await page.evaluate(() => {
      const img = document.createElement('img');
      img.src = 'http://127.0.0.2:9/blocked.png';
      document.body.append(img);
    });
    const sinkError = await page.evaluate(() => {
      try {
        document.getElementById('notes').innerHTML = '<b>x</b>';
        return null;
      } catch (e) {
        return String(e);
      }
    });
    assert.match(sinkError ?? '', /TrustedHTML/, 'innerHTML is refused');
    // A page of the auth server (signed in, /login goes on to its home
    // page): inline script is blocked.
    const login = await s.newPage();
    await login.goto(`${stack.issuer}/login`);
    await login.locator('h1').waitFor();
    await login.evaluate(() => {
      const script = document.createElement('script');
      script.textContent = 'window.ran = true';
      document.head.append(script);
    });
    assert.equal(await login.evaluate(() => window.ran ?? false), false, 'inline script did not run');
    await page.waitForTimeout(300);
    const on = (origin) => s.cspViolations().filter((m) => m.url.startsWith(origin)).map((m) => m.text).join('\n');
    assert.match(on(stack.spa.url), /img-src/, 'the blocked image on the app was reported');
    assert.match(on(stack.issuer), /script-src|default-src/, 'the blocked inline script on the auth server\'s page was reported');
  } finally {
    await s.close();
    s.saveConsole('csp-control');
  }
});
