// OpenID Connect in the demo SPA: it finds the issuer through OIDC
// Discovery, signs in with `openid` and a `nonce`, verifies the id_token
// with jose (served from its own origin), shows the name from userinfo,
// refuses an id_token for another nonce, a forged one and, after a refresh,
// one for another user, and logs out through the end_session_endpoint with
// id_token_hint and a checked `state`.

import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';

import { logIn, openLoginPage, submitLogin, useHarness, waitForText } from './lib/browser.mjs';

const h = useHarness('oidc');

const decode = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8'));

/** The JWT with some claims changed and the old signature kept. */
function withClaims(jwt, change) {
  const [header, payload, signature] = jwt.split('.');
  const claims = { ...JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')), ...change };
  return [header, Buffer.from(JSON.stringify(claims)).toString('base64url'), signature].join('.');
}

async function refreshFromNode(refreshToken) {
  const { metadata, spa } = h.stack;
  const response = await fetch(metadata.token_endpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: spa.clientId }),
  });
  return { status: response.status, body: await response.json().catch(() => null) };
}

/**
 * Answers the app's token requests of `grantType` with `rewrite(body)` of
 * the real answer (CORS headers kept). Returns the real bodies seen.
 */
async function rewriteTokenResponses(page, grantType, rewrite) {
  const seen = [];
  await page.route(h.stack.metadata.token_endpoint, async (route) => {
    const request = route.request();
    const form = new URLSearchParams(request.postData() ?? '');
    if (request.method() !== 'POST' || form.get('grant_type') !== grantType) return route.continue();
    const response = await route.fetch();
    const body = await response.json();
    seen.push(body);
    const headers = Object.fromEntries(Object.entries(response.headers()).filter(([name]) => name !== 'content-length'));
    return route.fulfill({ status: response.status(), headers, body: JSON.stringify(await rewrite(body)) });
  });
  return seen;
}

/** The token endpoint's answers to the app, as JSON, in order. */
function recordTokenResponses(page) {
  const bodies = [];
  page.on('response', async (response) => {
    if (response.url() !== h.stack.metadata.token_endpoint || response.request().method() !== 'POST') return;
    const entry = { grantType: new URLSearchParams(response.request().postData() ?? '').get('grant_type') };
    bodies.push(entry);
    entry.body = await response.json().catch(() => null);
  });
  return bodies;
}

async function assertSignedOut(page) {
  assert.ok(await page.getByRole('button', { name: 'Log in' }).isVisible());
  assert.ok(await page.getByRole('button', { name: 'Log out' }).isHidden());
  assert.equal(await page.locator('#whoami').textContent(), '');
  assert.ok(await page.locator('#app').isHidden(), 'no notes shown');
  assert.equal(await page.evaluate(() => window.notesDemo.currentTokens()), null, 'no token kept');
}

test('OIDC Core 3.1.3.7: the SPA signs in with openid, verifies the id_token through the JWKS and shows the name from userinfo (5.3)', () =>
  h.withSession('sign-in', async (s) => {
    const { stack } = h;
    const { spa, issuer, metadata, users } = stack;
    const page = await s.newPage();
    const requests = [];
    page.on('request', (r) => requests.push({ method: r.method(), url: r.url(), authorization: r.headers().authorization }));
    const vendor = [];
    page.on('response', (r) => r.url().startsWith(`${spa.url}/vendor/`) && vendor.push({ url: r.url(), status: r.status(), type: r.headers()['content-type'] }));
    const tokenResponses = recordTokenResponses(page);

    await logIn(page, stack, users.alice);

    // OIDC Discovery 1.0 section 4: the app read the issuer's document.
    assert.ok(requests.some((r) => r.method === 'GET' && r.url === `${issuer}/.well-known/openid-configuration`), 'discovery document fetched');
    // The authorization request (OIDC Core 3.1.2.1).
    const authorize = new URL(requests.find((r) => r.url.startsWith(`${metadata.authorization_endpoint}?`)).url);
    const asked = authorize.searchParams;
    assert.equal(asked.get('response_type'), 'code');
    assert.equal(asked.get('client_id'), spa.clientId);
    assert.ok(asked.get('scope').split(' ').includes('openid'), `scope ${asked.get('scope')}`);
    assert.equal(asked.get('code_challenge_method'), 'S256');
    assert.match(asked.get('nonce') ?? '', /^[A-Za-z0-9_-]{20,}$/, 'a random nonce');
    assert.match(asked.get('state') ?? '', /^[A-Za-z0-9_-]{20,}$/, 'a random state');

    // The token response carried an id_token, the app verified it with
    // the issuer's keys (it fetched jwks_uri) and kept its claims.
    const code = tokenResponses.find((t) => t.grantType === 'authorization_code');
    assert.ok(code?.body?.id_token, 'the token response has an id_token');
    assert.ok(requests.some((r) => r.method === 'GET' && r.url === metadata.jwks_uri), 'the JWKS was fetched');
    const { idToken, claims } = await page.evaluate(() => window.notesDemo.idToken());
    assert.equal(idToken, code.body.id_token);
    assert.deepEqual(claims, decode(idToken));
    assert.equal(claims.iss, issuer);
    assert.deepEqual([claims.aud].flat(), [spa.clientId]);
    assert.equal(claims.nonce, asked.get('nonce'), 'the nonce came back exactly');
    assert.ok(claims.exp > Date.now() / 1000, 'not expired');

    // The name came from the userinfo endpoint, called with the access token.
    const { accessToken } = await page.evaluate(() => window.notesDemo.currentTokens());
    const userinfo = requests.filter((r) => r.url === metadata.userinfo_endpoint && r.method !== 'OPTIONS');
    assert.equal(userinfo.length, 1, 'one userinfo request');
    assert.equal(userinfo[0].authorization, `Bearer ${accessToken}`);
    assert.ok(!requests.some((r) => r.url === `${stack.api}/me`), 'the name no longer comes from /api/me');
    await waitForText(page, '#whoami', 'Signed in as alice');

    // jose was loaded from the app's own origin, as JavaScript.
    assert.ok(vendor.some((v) => v.url === `${spa.url}/vendor/jose/index.js` && v.status === 200), JSON.stringify(vendor));
    for (const v of vendor) {
      assert.equal(v.status, 200, v.url);
      assert.match(v.type ?? '', /^text\/javascript/, v.url);
    }
    // Nothing of the login is left in storage, no token anywhere but memory.
    assert.deepEqual(await page.evaluate(() => Object.keys(sessionStorage)), ['notes-demo:signed-in']);
    assert.equal(await page.evaluate(() => localStorage.length), 0);
  }));

test('OIDC Core 3.1.3.7 (11): an id_token issued for another nonce is refused; the SPA is not signed in', () =>
  h.withSession('other-nonce', async (s) => {
    const { spa, issuer, metadata, users } = h.stack;
    const page = await s.newPage();
    // The authorization request reaches the server with another nonce than
    // the one the app keeps, so the server signs a valid id_token for it.
    await page.route((url) => url.href.startsWith(`${metadata.authorization_endpoint}?`), (route) => {
      const url = new URL(route.request().url());
      if (url.searchParams.has('nonce')) url.searchParams.set('nonce', 'a-nonce-this-app-never-sent');
      return route.continue({ url: url.toString() });
    });
    const tokenResponses = recordTokenResponses(page);
    await openLoginPage(page, spa, issuer);
    await submitLogin(page, users.alice);
    await waitForText(page, '#status', "The sign-in could not be verified: the ID token's nonce does not match this login.");
    assert.ok(await page.locator('#status.error').isVisible());
    await assertSignedOut(page);

    // The server did answer, with a correctly signed id_token for the other nonce.
    const code = tokenResponses.find((t) => t.grantType === 'authorization_code');
    assert.equal(decode(code.body.id_token).nonce, 'a-nonce-this-app-never-sent');
    // The app revoked the refresh token it will not use (before it showed the error).
    const refused = await refreshFromNode(code.body.refresh_token);
    assert.equal(refused.status, 400, JSON.stringify(refused.body));
    assert.equal(refused.body?.error, 'invalid_grant');
  }));

test('OIDC Core 3.1.3.7 (6): an id_token whose nonce was changed after signing is refused (signature)', () =>
  h.withSession('forged-id-token', async (s) => {
    const { spa, issuer, users } = h.stack;
    const page = await s.newPage();
    // The id_token's nonce is set to the one the app sent, as a forger
    // would: the claims then fit, and only the signature can tell.
    let nonce;
    page.on('request', (r) => {
      if (r.url().startsWith(`${issuer}/authorize?`)) nonce ??= new URL(r.url()).searchParams.get('nonce');
    });
    const real = await rewriteTokenResponses(page, 'authorization_code', (body) => ({
      ...body,
      id_token: withClaims(body.id_token, { nonce, sub: 'someone-else' }),
    }));
    await openLoginPage(page, spa, issuer);
    await submitLogin(page, users.bob);
    await page.locator('#status.error').waitFor();
    assert.match(await page.locator('#status').textContent(), /^The sign-in could not be verified: the ID token is not valid \(.*signature.*\)\.$/);
    await assertSignedOut(page);
    assert.equal(real.length, 1);

    // Untouched, the same flow signs in (the check above is not a false alarm).
    await page.unrouteAll();
    await page.getByRole('button', { name: 'Log in' }).click();
    await waitForText(page, '#whoami', 'Signed in as bob');
  }));

test('OIDC Core 12.2: a refresh brings a new id_token for the same sub; one for another user is refused', () =>
  h.withSession('refresh', async (s) => {
    const { stack } = h;
    const page = await s.newPage();
    await logIn(page, stack, stack.users.alice);
    const first = await page.evaluate(() => window.notesDemo.idToken());

    const tokenResponses = recordTokenResponses(page);
    await page.evaluate(() => window.notesDemo.refreshNow());
    const second = await page.evaluate(() => window.notesDemo.idToken());
    const refreshed = tokenResponses.find((t) => t.grantType === 'refresh_token');
    assert.ok(refreshed?.body?.id_token, 'the refresh response has an id_token');
    assert.equal(second.idToken, refreshed.body.id_token, 'the app took the new id_token');
    assert.notEqual(second.idToken, first.idToken);
    assert.equal(second.claims.sub, first.claims.sub);
    assert.equal(second.claims.nonce, undefined, 'no nonce after a refresh');
    await waitForText(page, '#whoami', 'Signed in as alice');

    // Bob signs in elsewhere; his next refresh answer (signed by the
    // issuer for this client, with his own access token) is handed to
    // alice's app.
    const bobs = await h.browser.newContext();
    let bobsAnswer;
    try {
      const other = s.watch(await bobs.newPage());
      await logIn(other, stack, stack.users.bob);
      const { refreshToken } = await other.evaluate(() => window.notesDemo.currentTokens());
      bobsAnswer = await refreshFromNode(refreshToken);
    } finally {
      await bobs.close();
    }
    assert.equal(bobsAnswer.status, 200, JSON.stringify(bobsAnswer.body));
    assert.ok(bobsAnswer.body.id_token);
    assert.notEqual(decode(bobsAnswer.body.id_token).sub, first.claims.sub);
    await rewriteTokenResponses(page, 'refresh_token', () => bobsAnswer.body);
    await assert.rejects(page.evaluate(() => window.notesDemo.refreshNow()), /another user/);
    await waitForText(page, '#status', 'Your session could not be verified: the refreshed ID token names another user (sub). Please log in again.');
    await assertSignedOut(page);
  }));

test('RP-Initiated Logout 1.0 section 2: logout goes to the end_session_endpoint with id_token_hint and state, checked on return (section 3)', () =>
  h.withSession('end-session', async (s) => {
    const { stack } = h;
    const { spa, metadata } = stack;
    const page = await s.newPage();
    await logIn(page, stack, stack.users.alice);
    const { idToken } = await page.evaluate(() => window.notesDemo.idToken());

    await page.getByRole('button', { name: 'Log out' }).click();
    await page.waitForURL((url) => url.href.startsWith(`${metadata.end_session_endpoint}?`));
    const asked = new URL(page.url()).searchParams;
    assert.equal(asked.get('id_token_hint'), idToken);
    assert.equal(asked.get('client_id'), spa.clientId);
    assert.equal(asked.get('post_logout_redirect_uri'), `${spa.url}/`);
    const state = asked.get('state');
    assert.match(state ?? '', /^[A-Za-z0-9_-]{20,}$/);

    await page.getByRole('button', { name: 'Sign out' }).click();
    await waitForText(page, '#status', 'You are signed out.');
    assert.ok(await page.locator('#status.error').isHidden(), 'not an error');
    // Back at post_logout_redirect_uri with the same state; the app then
    // cleaned the address bar and its storage.
    const back = s.visited.find((url) => url.startsWith(`${spa.url}/?`));
    assert.equal(new URL(back).searchParams.get('state'), state);
    assert.equal(page.url(), `${spa.url}/`);
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    await assertSignedOut(page);

    // The issuer's session is over: Log in asks for the password again.
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.waitForURL((url) => url.href.startsWith(`${stack.issuer}/login`));
    await page.locator('input[name="password"]').waitFor();
  }));

test('RP-Initiated Logout 1.0 section 3: a return with another state is refused by the SPA', () =>
  h.withSession('logout-state', async (s) => {
    const { stack } = h;
    const { spa, metadata } = stack;
    const page = await s.newPage();
    await logIn(page, stack, stack.users.bob);
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.waitForURL((url) => url.href.startsWith(`${metadata.end_session_endpoint}?`));
    // Instead of the issuer's answer, a forged one.
    await page.goto(`${spa.url}/?state=forged-state`);
    await waitForText(page, '#status', 'The logout response does not match the request (state).');
    assert.ok(await page.locator('#status.error').isVisible());
    assert.equal(page.url(), `${spa.url}/`);
    await assertSignedOut(page);
  }));

/** A raw HTTP/1.1 GET, so the path reaches the server exactly as written. */
function rawGet(origin, path) {
  const { hostname, port } = new URL(origin);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () => {
      socket.end(`GET ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nConnection: close\r\n\r\n`);
    });
    let data = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk) => { data += chunk; });
    socket.on('end', () => resolve({ status: Number(data.split(' ')[1]), text: data }));
    socket.on('error', reject);
  });
}

test('spa-server serves the pinned jose build under /vendor/jose/ and nothing outside it', async () => {
  const { spa } = h.stack;
  const ok = await rawGet(spa.url, '/vendor/jose/index.js');
  assert.equal(ok.status, 200);
  assert.match(ok.text, /content-type: text\/javascript/i);
  assert.match(ok.text, /content-security-policy: /i);
  assert.match(ok.text, /createRemoteJWKSet/);
  for (const path of [
    '/vendor/jose/../../package.json',
    '/vendor/jose/../../../package.json',
    '/vendor/jose/%2e%2e/%2e%2e/package.json',
    '/vendor/jose/..%2f..%2fpackage.json',
    '/vendor/jose/../../../../../src/main.rs',
    '/vendor/jose//etc/passwd',
    '/vendor/jose/no-such-file.js',
    '/vendor/jose/',
  ]) {
    const answer = await rawGet(spa.url, path);
    assert.equal(answer.status, 404, `${path}: ${answer.text.slice(0, 200)}`);
  }
});
