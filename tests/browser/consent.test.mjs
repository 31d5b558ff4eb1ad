// Scenario 4: a third-party client (registered without --first-party, on
// its own origin) gets the consent page; approving signs the user in to
// that app, denying sends them back with "Access was denied." and no token.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { openLoginPage, screenshot, submitLogin, useHarness, waitForText } from './lib/browser.mjs';

const h = useHarness('consent');

/** Logs in to the third-party app and stops at its consent page. */
async function reachConsent(page, user) {
  const { partner, issuer } = h.stack;
  await openLoginPage(page, partner, issuer);
  await page.getByText('to continue to Partner Notes').waitFor();
  await submitLogin(page, user);
  await page.waitForURL((url) => url.href.startsWith(`${issuer}/authorize?`));
  await page.getByRole('heading', { name: 'Allow access?' }).waitFor();
  assert.equal(await page.locator('.client-name').textContent(), 'Partner Notes');
  const scopes = await page.locator('ul.scopes li strong').allTextContents();
  assert.deepEqual(scopes.sort(), ['notes:read', 'notes:write', 'openid', 'profile']);
  assert.equal(await page.locator('form[method="post"] input[name="csrf_token"]').getAttribute('type'), 'hidden');
  assert.equal(await page.locator('button[name="decision"][value="approve"]').count(), 1);
  assert.equal(await page.locator('button[name="decision"][value="deny"]').count(), 1);
}

test('approving on the consent page signs the user in to the third-party app', () =>
  h.withSession('consent-approve', async (s) => {
    const { partner, users } = h.stack;
    const page = await s.newPage();
    await reachConsent(page, users.alice);
    await screenshot(page, 'consent', { docs: 'consent' });
    await page.locator('button[name="decision"][value="approve"]').click();
    await waitForText(page, '#whoami', 'Signed in as alice');
    assert.equal(page.url(), `${partner.url}/`);
    assert.ok(await page.evaluate(() => window.notesDemo.currentTokens()?.refreshToken));
    // The app can use the API from its own origin (CORS allows it).
    await page.locator('#notes').waitFor({ state: 'attached' });
    assert.equal(await page.locator('#status').textContent(), '');
  }));

test('denying on the consent page leaves the app signed out with "Access was denied."', () =>
  h.withSession('consent-deny', async (s) => {
    const { partner, users } = h.stack;
    const page = await s.newPage();
    // bob: alice's approval above is remembered for her and would skip the page.
    await reachConsent(page, users.bob);
    const back = page.waitForURL((url) => url.href.startsWith(`${partner.url}/callback?`), { waitUntil: 'commit' });
    await page.locator('button[name="decision"][value="deny"]').click();
    await back;
    await waitForText(page, '#status', 'Access was denied.');
    assert.equal(page.url(), `${partner.url}/`);
    assert.ok(await page.getByRole('button', { name: 'Log in' }).isVisible());
    assert.ok(await page.getByRole('button', { name: 'Log out' }).isHidden());
    assert.equal(await page.locator('#whoami').textContent(), '');
    assert.equal(await page.evaluate(() => window.notesDemo.currentTokens()), null, 'no token');
    assert.ok(await page.locator('#app').isHidden(), 'no notes shown');
    // The redirect carried the RFC 6749 error and the issuer (RFC 9207).
    const callback = new URL(s.visited.find((url) => url.startsWith(`${partner.url}/callback?`)));
    assert.equal(callback.searchParams.get('error'), 'access_denied');
    assert.equal(callback.searchParams.get('iss'), h.stack.issuer);
    assert.equal(callback.searchParams.get('code'), null);
  }));

/** Counts consent pages shown on `page` (the authorization endpoint answering 200 with a form, not a redirect). */
function countConsentPages(page) {
  const shown = { count: 0 };
  page.on('response', (response) => {
    if (response.url().startsWith(`${h.stack.issuer}/authorize?`) && response.status() === 200) shown.count += 1;
  });
  return shown;
}

test('an approval is remembered for the next login; a denial is not', () =>
  h.withSession('consent-remembered', async (s) => {
    const { partner, issuer, users } = h.stack;
    // alice approved above: in a new browser session she goes straight back to the app.
    const page = await s.newPage();
    const consentA = countConsentPages(page);
    await openLoginPage(page, partner, issuer);
    await submitLogin(page, users.alice);
    await waitForText(page, '#whoami', 'Signed in as alice');
    assert.equal(consentA.count, 0, 'no consent page for a remembered approval');

    // bob denied above: he is asked again (in his own browser session).
    const bobs = await h.browser.newContext();
    try {
      const other = s.watch(await bobs.newPage());
      const consentB = countConsentPages(other);
      await openLoginPage(other, partner, issuer);
      await submitLogin(other, users.bob);
      await other.getByRole('heading', { name: 'Allow access?' }).waitFor();
      assert.equal(consentB.count, 1);
    } finally {
      await bobs.close();
    }
  }));
