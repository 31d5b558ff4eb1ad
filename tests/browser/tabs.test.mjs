// Scenario 3: two tabs of the app share one token set (BroadcastChannel)
// and refresh at the same moment with the same refresh token. The server's
// grace window (AUTH_REFRESH_GRACE_SECONDS, default 2) must give both the
// same successor instead of treating the second as a replay.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { addNote, logIn, useHarness, waitForText } from './lib/browser.mjs';

const h = useHarness('tabs');

/** Records the app's refresh-token grants on `page`: what it presented, what came back. */
function recordRefreshes(page, tokenEndpoint) {
  const grants = [];
  page.on('response', async (response) => {
    const request = response.request();
    if (request.method() !== 'POST' || response.url() !== tokenEndpoint) return;
    const form = new URLSearchParams(request.postData() ?? '');
    if (form.get('grant_type') !== 'refresh_token') return;
    const entry = { presented: form.get('refresh_token'), status: response.status() };
    grants.push(entry);
    entry.body = await response.json().catch(() => null);
  });
  return grants;
}

test('two tabs refreshing at the same moment both stay signed in', () =>
  h.withSession('two-tabs', async (s) => {
    const { stack } = h;
    const tokenEndpoint = stack.metadata.token_endpoint;
    const a = await s.newPage();
    await logIn(a, stack, stack.users.alice);

    // Tab B opens the app and adopts tab A's tokens instead of logging in.
    const b = await s.newPage();
    const visitedB = [];
    b.on('framenavigated', (frame) => frame === b.mainFrame() && visitedB.push(frame.url()));
    const apiCallsB = [];
    b.on('request', (r) => r.url().startsWith(stack.api) && r.method() !== 'OPTIONS' && apiCallsB.push(`${r.method()} ${r.url().slice(stack.api.length)}`));
    const userinfoCallsB = [];
    b.on('request', (r) => r.url() === stack.metadata.userinfo_endpoint && r.method() !== 'OPTIONS' && userinfoCallsB.push(r.method()));
    await b.goto(`${stack.spa.url}/`);
    await waitForText(b, '#whoami', 'Signed in as alice');
    await b.locator('#new-note').waitFor();
    await b.waitForTimeout(300);
    // It loads the user (userinfo) and the notes once (not once per tab that answered).
    assert.deepEqual(apiCallsB, ['GET /notes']);
    assert.deepEqual(userinfoCallsB, ['GET']);
    await waitForText(a, '#whoami', 'Signed in as alice');
    const start = await a.evaluate(() => window.notesDemo.currentTokens());
    assert.deepEqual(await b.evaluate(() => window.notesDemo.currentTokens()), start, 'tab B shares tab A\'s tokens');
    assert.deepEqual(visitedB, [`${stack.spa.url}/`], 'tab B did not go through the auth server');

    const grantsA = recordRefreshes(a, tokenEndpoint);
    const grantsB = recordRefreshes(b, tokenEndpoint);
    let presented = start.refreshToken;
    for (let round = 1; round <= 3; round += 1) {
      const [ra, rb] = await Promise.all([
        a.evaluate(() => window.notesDemo.refreshNow()),
        b.evaluate(() => window.notesDemo.refreshNow()),
      ]);
      assert.ok(ra?.refreshToken && rb?.refreshToken, `round ${round}: both refreshes resolved`);
      assert.equal(ra.refreshToken, rb.refreshToken, `round ${round}: both tabs hold the same refresh token`);
      assert.notEqual(ra.refreshToken, presented, `round ${round}: the refresh token was rotated`);
      // Both requests really went to the server with the same old token
      // and both were answered with the same new one (not one tab being
      // rescued by the other's broadcast).
      await a.waitForTimeout(100); // let the response listeners finish
      const sent = [grantsA.at(-1), grantsB.at(-1)];
      for (const [i, grant] of sent.entries()) {
        assert.ok(grant, `round ${round}: tab ${'AB'[i]} sent a refresh_token grant`);
        assert.equal(grant.presented, presented, `round ${round}: tab ${'AB'[i]} presented the current refresh token`);
        assert.equal(grant.status, 200, `round ${round}: tab ${'AB'[i]} got ${grant.status} ${JSON.stringify(grant.body)}`);
        assert.equal(grant.body?.refresh_token, ra.refreshToken, `round ${round}: tab ${'AB'[i]} received the shared successor`);
      }
      presented = ra.refreshToken;
    }
    assert.equal(grantsA.length, 3);
    assert.equal(grantsB.length, 3);

    // Both tabs are still signed in and can use the API.
    for (const [page, name] of [[a, 'A'], [b, 'B']]) {
      await waitForText(page, '#whoami', 'Signed in as alice');
      assert.ok(await page.getByRole('button', { name: 'Log out' }).isVisible());
      await addNote(page, `Written in tab ${name}`, `after three concurrent refreshes`);
    }
    // The token both tabs hold now still works for the next refresh.
    const next = await b.evaluate(() => window.notesDemo.refreshNow());
    assert.notEqual(next.refreshToken, presented);
    await waitForText(a, '#whoami', 'Signed in as alice');
    assert.equal((await a.evaluate(() => window.notesDemo.currentTokens())).refreshToken, next.refreshToken,
      'tab A adopted tab B\'s newer token');
  }));
