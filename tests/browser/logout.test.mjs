// Scenario 5: logging out (through the end_session_endpoint) revokes the
// refresh token, ends the auth-server session and returns to the app, which
// shows the Log in button. The OpenID Connect details of that logout
// (id_token_hint, state) are in oidc.test.mjs.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { logIn, screenshot, useHarness, waitForText } from './lib/browser.mjs';

const h = useHarness('logout');

async function refreshFromNode(refreshToken) {
  const { metadata, spa } = h.stack;
  const response = await fetch(metadata.token_endpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: spa.clientId }),
  });
  return { status: response.status, body: await response.json().catch(() => null) };
}

/** Clicks "Log out", confirms at the end_session_endpoint and waits for the app. */
async function logOut(page) {
  const { metadata, spa } = h.stack;
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.waitForURL((url) => url.href.startsWith(`${metadata.end_session_endpoint}?`));
  await page.getByRole('heading', { name: 'Sign out?' }).waitFor();
  await page.getByText('You are signed in as').waitFor();
  await screenshot(page, 'logout');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await waitForText(page, '#status', 'You are signed out.');
  assert.equal(page.url(), `${spa.url}/`);
  await page.getByRole('button', { name: 'Log in' }).waitFor({ state: 'visible' });
}

async function assertSignedOutApp(page) {
  assert.ok(await page.getByRole('button', { name: 'Log out' }).isHidden());
  assert.equal(await page.locator('#whoami').textContent(), '');
  assert.ok(await page.locator('#app').isHidden());
  assert.equal(await page.evaluate(() => window.notesDemo.currentTokens()), null);
}

test('logout returns to the app signed out, and the old refresh token is refused', () =>
  h.withSession('logout', async (s) => {
    const { stack } = h;
    const page = await s.newPage();
    await logIn(page, stack, stack.users.alice);
    const { refreshToken } = await page.evaluate(() => window.notesDemo.currentTokens());
    assert.ok(refreshToken);

    await logOut(page);
    await assertSignedOutApp(page);
    const refused = await refreshFromNode(refreshToken);
    assert.equal(refused.status, 400, JSON.stringify(refused.body));
    assert.equal(refused.body?.error, 'invalid_grant');

    // The auth-server session is over too: Log in asks for the password again.
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.waitForURL((url) => url.href.startsWith(`${stack.issuer}/login`));
    await page.locator('input[name="password"]').waitFor();
  }));

test('logout revokes the session\'s refresh tokens even when the app\'s own revoke call fails', () =>
  h.withSession('logout-server-side', async (s) => {
    const { stack } = h;
    const page = await s.newPage();
    await logIn(page, stack, stack.users.bob);
    const { refreshToken } = await page.evaluate(() => window.notesDemo.currentTokens());
    // Only POST /logout on the auth server can revoke the token now.
    let blocked = 0;
    await page.route(stack.metadata.revocation_endpoint, (route) => {
      blocked += 1;
      return route.abort();
    });
    await logOut(page);
    assert.equal(blocked, 1, 'the app tried to revoke its refresh token');
    await assertSignedOutApp(page);
    const refused = await refreshFromNode(refreshToken);
    assert.equal(refused.status, 400, JSON.stringify(refused.body));
    assert.equal(refused.body?.error, 'invalid_grant');
  }));
