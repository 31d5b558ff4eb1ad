// Scenarios 1, 2 and 6: logging in through the real login page, a wrong
// password, and user content that looks like HTML.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { addNote, logIn, openLoginPage, screenshot, submitLogin, useHarness, waitForText } from './lib/browser.mjs';

const h = useHarness('login');

test('logging in through the real login page lands back in the app, signed in', () =>
  h.withSession('login', async (s) => {
    const { spa, issuer, users } = h.stack;
    const page = await s.newPage();
    await openLoginPage(page, spa, issuer);
    // The auth server's own page, naming the app the user signs in to.
    assert.equal(await page.locator('h1').textContent(), 'Sign in');
    await page.getByText('to continue to Notes demo').waitFor();
    assert.equal(await page.locator('input[name="csrf_token"]').getAttribute('type'), 'hidden');
    await screenshot(page, 'login', { docs: 'login' });

    await submitLogin(page, users.alice);
    await waitForText(page, '#whoami', 'Signed in as alice');
    // Back at the app's own origin, with the code and state gone from the address bar.
    assert.equal(page.url(), `${spa.url}/`);
    assert.ok(await page.getByRole('button', { name: 'Log out' }).isVisible());
    assert.ok(await page.getByRole('button', { name: 'Log in' }).isHidden());
    assert.ok(await page.locator('#new-note').isVisible(), 'the notes form is shown');
    assert.equal(await page.locator('#status').textContent(), '');
    const tokens = await page.evaluate(() => window.notesDemo.currentTokens());
    assert.ok(tokens?.accessToken && tokens?.refreshToken, 'the app holds an access and a refresh token');
    // Nothing of the login is left in storage.
    assert.equal(await page.evaluate(() => localStorage.length), 0);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('notes-demo:login')), null);
  }));

test('a wrong password shows the generic error and stays on the login page', () =>
  h.withSession('wrong-password', async (s) => {
    const { spa, issuer, users } = h.stack;
    const page = await s.newPage();
    await openLoginPage(page, spa, issuer);

    for (const attempt of [
      { username: 'alice', password: `${users.alice.password}-wrong` },
      { username: 'nobody-here', password: 'not-a-real-password' },
    ]) {
      await submitLogin(page, attempt);
      await waitForText(page, 'p.error[role="alert"]', 'Incorrect username or password.');
      assert.ok(page.url().startsWith(`${issuer}/login`), `still on the login page: ${page.url()}`);
      assert.equal(await page.locator('input[name="password"]').inputValue(), '', 'the password is not echoed back');
      assert.equal(await page.locator('input[name="username"]').inputValue(), attempt.username);
    }
    // The form still works with the right password.
    await submitLogin(page, users.alice);
    await waitForText(page, '#whoami', 'Signed in as alice');
  }));

test('note titles and bodies that look like HTML are shown as text', () =>
  h.withSession('xss', async (s) => {
    const { stack } = h;
    const page = await s.newPage();
    await logIn(page, stack, stack.users.bob);

    await addNote(page, 'Welcome to Notes', 'Signed in with OAuth 2.1, PKCE and a first-party client.');
    await addNote(page, 'Shopping list', 'Milk, eggs, coffee.');
    const title = '<img src=x onerror=alert(1)>';
    const body = '<b>bold?</b> <script>alert(2)</script><a href="javascript:alert(3)">link</a> <svg onload=alert(4)>';
    const check = async () => {
      const item = page.locator('#notes > li').filter({ has: page.getByText(title, { exact: true }) });
      await item.waitFor();
      assert.equal(await item.locator('.note-title').textContent(), title);
      assert.equal(await item.locator('.note-body').textContent(), body);
      for (const tag of ['img', 'b', 'script', 'a', 'svg']) {
        assert.equal(await page.locator(`#notes ${tag}`).count(), 0, `no <${tag}> element in #notes`);
      }
      assert.equal(await page.locator('img').count(), 0, 'no <img> anywhere on the page');
    };

    await addNote(page, title, body);
    await check();
    // Reloading loads the list from the API (a reload logs in again,
    // quickly, while the auth-server session lives): still text.
    await page.reload();
    await waitForText(page, '#whoami', 'Signed in as bob');
    await page.locator('#notes > li').nth(2).waitFor();
    await check();
    // Give a would-be onerror/onload handler every chance to run.
    await page.waitForTimeout(500);
    assert.deepEqual(s.dialogs, [], 'no dialog fired');
    await screenshot(page, 'app', { docs: 'app' });
  }));
