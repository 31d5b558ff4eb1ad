// The OpenID Connect code flow driven by a strict third-party relying-party
// library, openid-client (pinned in package-lock.json), given nothing but
// the issuer URL: it discovers every endpoint itself. The user's side (login
// page, consent page, logout confirmation) is plain HTTP through
// lib/user-agent.mjs. The library does discovery, the authorization code
// grant with PKCE, `state`, `nonce` and RFC 9207 `iss` checks, validates
// each id_token (with enableNonRepudiationChecks also its signature through
// the JWKS), refreshes, reads userinfo and builds the end-session URL.
//
// The tests share one issuer and run in order: later ones use the sessions
// and tokens of earlier ones.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import * as client from 'openid-client';

import { startIssuer } from './lib/issuer.mjs';
import { UserAgent, parseForm } from './lib/user-agent.mjs';

const decodePart = (jwt, i) => JSON.parse(Buffer.from(jwt.split('.')[i], 'base64url').toString('utf8'));

/** For assert.rejects: openid-client's error or one of its causes says `pattern`. */
function refusedWith(pattern) {
  return (e) => {
    const messages = [];
    for (let error = e; error instanceof Error; error = error.cause) messages.push(`${error.name}: ${error.message}`);
    assert.match(messages.join(' <- '), pattern);
    return true;
  };
}

let issuer;
const requested = []; // every URL openid-client fetched, as "METHOD url"
let tamperTokenResponse = null; // (body) => body, for one test

// openid-client's HTTP goes through here: recorded, and the token response
// can be altered to prove the library notices.
async function recordingFetch(url, options) {
  requested.push(`${options.method} ${url}`);
  const response = await fetch(url, options);
  if (!tamperTokenResponse || String(url) !== issuer.metadata?.token_endpoint) return response;
  const body = tamperTokenResponse(await response.json());
  return new Response(JSON.stringify(body), {
    status: response.status,
    headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
  });
}

/** openid-client configured from the issuer URL only (OIDC Discovery 1.0). */
function discover(registered, authentication) {
  return client.discovery(new URL(issuer.url), registered.clientId, registered.clientSecret, authentication, {
    // The test issuer is http on loopback; the library refuses http otherwise.
    execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks],
    [client.customFetch]: recordingFetch,
  });
}

/** The authorization request openid-client builds, answered by the user; returns the checks for the grant. */
async function authorize(config, registered, ua, { scope = 'openid profile notes:read', decision, nonce = client.randomNonce() } = {}) {
  const pkceCodeVerifier = client.randomPKCECodeVerifier();
  const expectedState = client.randomState();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: registered.redirectUri,
    scope,
    code_challenge: await client.calculatePKCECodeChallenge(pkceCodeVerifier),
    code_challenge_method: 'S256',
    state: expectedState,
    ...(nonce ? { nonce } : {}),
  });
  const callback = await ua.authorize(url, issuer.user, { decision });
  return { callback, checks: { pkceCodeVerifier, expectedState, ...(nonce ? { expectedNonce: nonce } : {}) } };
}

const publicRp = { ua: new UserAgent() };

before(async () => {
  issuer = await startIssuer('code-flow');
  publicRp.config = await discover(issuer.publicClient, client.None());
  issuer.metadata = publicRp.config.serverMetadata();
});
after(async () => {
  await issuer?.stop();
});

test('OIDC Discovery 1.0 section 4: openid-client configures itself from the issuer URL alone', async () => {
  const m = publicRp.config.serverMetadata();
  assert.ok(requested.includes(`GET ${issuer.url}/.well-known/openid-configuration`), requested.join('\n'));
  assert.equal(m.issuer, issuer.url);
  assert.equal(m.authorization_endpoint, `${issuer.url}/authorize`);
  assert.equal(m.token_endpoint, `${issuer.url}/token`);
  assert.equal(m.userinfo_endpoint, `${issuer.url}/userinfo`);
  assert.equal(m.end_session_endpoint, `${issuer.url}/logout`);
  assert.equal(m.jwks_uri, `${issuer.url}/.well-known/jwks.json`);
  assert.equal(m.revocation_endpoint, `${issuer.url}/revoke`);
  assert.deepEqual(m.response_types_supported, ['code']);
  assert.ok(m.supportsPKCE('S256'));
  assert.deepEqual(m.code_challenge_methods_supported, ['S256']);
  assert.ok(m.id_token_signing_alg_values_supported.includes('ES256'));
  assert.deepEqual(m.subject_types_supported, ['public']);
  for (const method of ['client_secret_basic', 'client_secret_post', 'none']) {
    assert.ok(m.token_endpoint_auth_methods_supported.includes(method), method);
  }
  assert.ok(m.scopes_supported?.includes('openid'), `scopes_supported ${m.scopes_supported}`);
  assert.equal(m.authorization_response_iss_parameter_supported, true);
  // RFC 8414 section 3 / OIDC Discovery: the OAuth document agrees on the common fields.
  const oauth = await (await fetch(`${issuer.url}/.well-known/oauth-authorization-server`)).json();
  for (const field of ['issuer', 'authorization_endpoint', 'token_endpoint', 'jwks_uri', 'revocation_endpoint', 'response_types_supported', 'code_challenge_methods_supported']) {
    assert.deepEqual(oauth[field], m[field], field);
  }
});

test('OIDC Core 3.1.2.6: a denied consent reaches openid-client as access_denied (with state and iss)', async () => {
  const config = await discover(issuer.confidentialClient, client.ClientSecretBasic());
  const { callback, checks } = await authorize(config, issuer.confidentialClient, new UserAgent(), { decision: 'deny' });
  assert.equal(callback.searchParams.get('iss'), issuer.url);
  await assert.rejects(client.authorizationCodeGrant(config, callback, checks), (e) => {
    assert.ok(e instanceof client.AuthorizationResponseError, String(e));
    assert.equal(e.error, 'access_denied');
    return true;
  });
});

test('OIDC Core 3.1.3.7: id_token validated by openid-client (public client, PKCE S256, state, nonce, RFC 9207 iss, signature through the JWKS)', async () => {
  const { config, ua } = publicRp;
  const { callback, checks } = await authorize(config, issuer.publicClient, ua);
  assert.equal(callback.origin + callback.pathname, issuer.publicClient.redirectUri);
  assert.equal(callback.searchParams.get('iss'), issuer.url, 'RFC 9207 iss on the redirect');
  const before = requested.length;
  const tokens = await client.authorizationCodeGrant(config, callback, { ...checks, idTokenExpected: true });
  // enableNonRepudiationChecks: the signature was checked with a key from jwks_uri.
  assert.ok(requested.slice(before).includes(`GET ${issuer.metadata.jwks_uri}`), requested.slice(before).join('\n'));
  assert.equal(tokens.token_type, 'bearer');
  assert.ok(tokens.id_token && tokens.access_token && tokens.refresh_token);
  assert.ok(tokens.scope.split(' ').includes('openid'));

  const claims = tokens.claims();
  assert.equal(claims.iss, issuer.url);
  assert.deepEqual([claims.aud].flat(), [issuer.publicClient.clientId]);
  assert.equal(claims.nonce, checks.expectedNonce, 'nonce echoed exactly');
  assert.equal(typeof claims.sub, 'string');
  assert.equal(typeof claims.auth_time, 'number');
  assert.equal(typeof claims.at_hash, 'string');
  assert.equal(typeof claims.sid, 'string');
  if (claims.azp !== undefined) assert.equal(claims.azp, issuer.publicClient.clientId);
  assert.ok(claims.exp > claims.iat);
  const header = decodePart(tokens.id_token, 0);
  assert.equal(header.alg, 'ES256');
  assert.ok(header.kid, 'kid in the header');
  assert.ok(header.typ === undefined || header.typ === 'JWT', `typ ${header.typ}`);
  // The access token names the same subject (OIDC Core 2: sub is the user's identifier at this issuer).
  assert.equal(decodePart(tokens.access_token, 1).sub, claims.sub);
  publicRp.tokens = tokens;
  publicRp.claims = claims;
});

test('OIDC Core 3.1.3.7 (11): openid-client refuses the id_token when the nonce it expects is not the one echoed', async () => {
  const { config, ua } = publicRp;
  const { callback, checks } = await authorize(config, issuer.publicClient, ua);
  await assert.rejects(
    client.authorizationCodeGrant(config, callback, { ...checks, expectedNonce: client.randomNonce() }),
    refusedWith(/unexpected ID Token "nonce" claim value/),
  );
});

test('OIDC Core 3.1.3.7 (6): openid-client refuses an id_token whose claims were changed after signing', async () => {
  const { config, ua } = publicRp;
  const { callback, checks } = await authorize(config, issuer.publicClient, ua);
  tamperTokenResponse = (body) => {
    const [header, payload, signature] = body.id_token.split('.');
    const claims = { ...JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')), sub: 'someone-else' };
    return { ...body, id_token: [header, Buffer.from(JSON.stringify(claims)).toString('base64url'), signature].join('.') };
  };
  try {
    await assert.rejects(client.authorizationCodeGrant(config, callback, checks), refusedWith(/signature/i));
  } finally {
    tamperTokenResponse = null;
  }
});

test('RFC 9207 section 2.4: openid-client refuses an authorization response whose iss is another issuer or missing', async () => {
  const { config, ua } = publicRp;
  const { callback, checks } = await authorize(config, issuer.publicClient, ua);
  const other = new URL(callback);
  other.searchParams.set('iss', 'http://127.0.0.1:1');
  await assert.rejects(client.authorizationCodeGrant(config, other, checks), refusedWith(/"iss"/));
  const missing = new URL(callback);
  missing.searchParams.delete('iss');
  await assert.rejects(client.authorizationCodeGrant(config, missing, checks), refusedWith(/"iss"/));
});

test('OIDC Core 12.2: refreshTokenGrant returns a new id_token with the same sub and auth_time, and no nonce', async () => {
  const { config } = publicRp;
  const tokens = await client.refreshTokenGrant(config, publicRp.tokens.refresh_token);
  assert.ok(tokens.id_token, 'a new id_token');
  assert.notEqual(tokens.id_token, publicRp.tokens.id_token);
  assert.notEqual(tokens.refresh_token, publicRp.tokens.refresh_token, 'the refresh token rotated');
  const claims = tokens.claims();
  assert.equal(claims.sub, publicRp.claims.sub);
  assert.equal(claims.iss, publicRp.claims.iss);
  assert.deepEqual(claims.aud, publicRp.claims.aud);
  assert.equal(claims.auth_time, publicRp.claims.auth_time);
  assert.equal(claims.nonce, undefined);
  publicRp.tokens = tokens;
});

test('OIDC Core 5.3.2 and 5.3.4: fetchUserInfo answers for the id_token\'s sub, with preferred_username for profile', async () => {
  const { config, tokens } = publicRp;
  const info = await client.fetchUserInfo(config, tokens.access_token, publicRp.claims.sub);
  assert.equal(info.sub, publicRp.claims.sub);
  assert.equal(info.preferred_username, issuer.user.username);
  // The library's own check bites: another expected sub is refused.
  await assert.rejects(client.fetchUserInfo(config, tokens.access_token, 'someone-else'), refusedWith(/"sub"/));
  // OIDC Core 5.3.1: POST works too.
  const posted = await fetch(issuer.metadata.userinfo_endpoint, {
    method: 'POST',
    headers: { authorization: `Bearer ${tokens.access_token}` },
  });
  assert.equal(posted.status, 200);
  assert.equal((await posted.json()).sub, publicRp.claims.sub);
});

test('OIDC Core 5.3.3 and RFC 6750 section 3.1: userinfo refusals reach openid-client as Bearer challenges (401 invalid_token, 403 insufficient_scope)', async () => {
  const { config, ua } = publicRp;
  const challenge = (status, error) => (e) => {
    assert.ok(e instanceof client.WWWAuthenticateChallengeError, String(e));
    assert.equal(e.status, status);
    assert.equal(e.cause[0].scheme, 'bearer');
    assert.equal(e.cause[0].parameters.error, error);
    return true;
  };
  await assert.rejects(client.fetchUserInfo(config, 'not-a-token', client.skipSubjectCheck), challenge(401, 'invalid_token'));
  // A token without openid (narrowed request, no nonce, no id_token).
  const { callback, checks } = await authorize(config, issuer.publicClient, ua, { scope: 'profile notes:read', nonce: null });
  const tokens = await client.authorizationCodeGrant(config, callback, checks);
  assert.equal(tokens.id_token, undefined, 'no id_token without openid');
  assert.ok(!tokens.scope.split(' ').includes('openid'));
  await assert.rejects(client.fetchUserInfo(config, tokens.access_token, client.skipSubjectCheck), challenge(403, 'insufficient_scope'));
});

for (const [name, authentication] of [
  ['client_secret_basic', () => client.ClientSecretBasic()],
  ['client_secret_post', () => client.ClientSecretPost()],
]) {
  test(`OIDC Core 3.1.3.7 and 9 (${name}): a confidential third-party client signs in through the consent page, refreshes and reads userinfo`, async () => {
    const registered = issuer.confidentialClient;
    const config = await discover(registered, authentication());
    const { callback, checks } = await authorize(config, registered, new UserAgent());
    const tokens = await client.authorizationCodeGrant(config, callback, { ...checks, idTokenExpected: true });
    const claims = tokens.claims();
    assert.deepEqual([claims.aud].flat(), [registered.clientId]);
    assert.equal(claims.nonce, checks.expectedNonce);
    const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
    assert.equal(refreshed.claims().sub, claims.sub);
    const info = await client.fetchUserInfo(config, refreshed.access_token, claims.sub);
    assert.equal(info.preferred_username, issuer.user.username);
  });
}

test('RP-Initiated Logout 1.0 section 3: a post_logout_redirect_uri not registered for the client is not followed', async () => {
  const { config, ua, tokens } = publicRp;
  const elsewhere = 'http://127.0.0.1:1/not-registered';
  const url = client.buildEndSessionUrl(config, {
    id_token_hint: tokens.id_token,
    post_logout_redirect_uri: elsewhere,
    state: client.randomState(),
  });
  const shown = await ua.request(url);
  assert.ok(!shown.location?.startsWith(elsewhere), `GET redirected to ${shown.location}`);
  if (shown.status === 200 && /<form\b/i.test(shown.html)) {
    const confirmed = await ua.submit(shown, {});
    assert.ok(!confirmed.location?.startsWith(elsewhere), `POST redirected to ${confirmed.location}`);
  }
  // Whatever it did, the session ended or not, the user is not sent away;
  // sign in again for the next test.
  const again = await authorize(config, issuer.publicClient, ua);
  publicRp.tokens = await client.authorizationCodeGrant(config, again.callback, again.checks);
});

test('RP-Initiated Logout 1.0 sections 2 and 3: buildEndSessionUrl; the end_session_endpoint confirms, then returns to post_logout_redirect_uri with state', async () => {
  const { config, ua, tokens } = publicRp;
  const state = client.randomState();
  const url = client.buildEndSessionUrl(config, {
    id_token_hint: tokens.id_token,
    post_logout_redirect_uri: issuer.publicClient.postLogoutRedirectUri,
    state,
  });
  assert.equal(url.origin + url.pathname, issuer.metadata.end_session_endpoint);
  assert.equal(url.searchParams.get('client_id'), issuer.publicClient.clientId);

  const shown = await ua.request(url);
  assert.equal(shown.status, 200, `the confirmation page (got ${shown.status})`);
  const form = parseForm(shown.html, shown.url);
  assert.equal(form.method, 'post');
  assert.ok(form.hidden.csrf_token, 'a hidden csrf_token');
  const confirmed = await ua.submit(shown, {});
  assert.equal(confirmed.status, 303, `POST /logout answered ${confirmed.status}`);
  const back = new URL(confirmed.location);
  assert.equal(back.origin + back.pathname, issuer.publicClient.postLogoutRedirectUri);
  assert.equal(back.searchParams.get('state'), state, 'state echoed');

  // The session is over: the next authorization request asks for the password.
  const login = await ua.follow(client.buildAuthorizationUrl(config, {
    redirect_uri: issuer.publicClient.redirectUri,
    scope: 'openid',
    code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()),
    code_challenge_method: 'S256',
  }), issuer.url);
  assert.equal(login.status, 200);
  assert.ok(login.url.startsWith(`${issuer.url}/login`), login.url);
  // And the session's refresh token no longer works.
  await assert.rejects(client.refreshTokenGrant(config, tokens.refresh_token), (e) => {
    assert.ok(e instanceof client.ResponseBodyError, String(e));
    assert.equal(e.error, 'invalid_grant');
    return true;
  });
});
