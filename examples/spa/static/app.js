// Demo single-page app: OpenID Connect sign-in (authorization code flow with
// PKCE S256, OAuth 2.1) against the auth-server, then the notes API on the
// resource server.
//
// - Endpoints come from OpenID Connect Discovery 1.0
//   (`{issuer}/.well-known/openid-configuration`).
// - Tokens live in memory only. The PKCE verifier, `state` and `nonce` of a
//   login in progress (and the `state` of a logout) are kept in
//   sessionStorage across the redirect and removed on return; nothing else
//   is stored.
// - `state` and `iss` (RFC 9207) are checked on return. The id_token is
//   verified with jose (pinned in examples/spa/package.json, served by
//   spa-server from this origin): signature through the issuer's JWKS,
//   `iss`, `aud`, `exp`, `nonce` (OIDC Core 3.1.3.7); one from a refresh
//   must name the same `sub` (OIDC Core 12.2). The name shown comes from
//   the userinfo endpoint, whose `sub` must match (OIDC Core 5.3.4).
// - Logout goes through the end_session_endpoint (OIDC RP-Initiated Logout
//   1.0) with id_token_hint and a `state` checked on return.
// - Tabs of the app share one token set over a BroadcastChannel, so two tabs
//   may refresh at the same moment with the same refresh token; the server's
//   grace window gives both the same successor.
// - User content is rendered with textContent only; the page's CSP forbids
//   inline script and requires Trusted Types, so an HTML sink would throw.

import { createRemoteJWKSet, jwtVerify } from "/vendor/jose/index.js";

const $ = (id) => document.getElementById(id);
const LOGIN_KEY = "notes-demo:login";
const LOGOUT_KEY = "notes-demo:logout";
const SIGNED_IN_KEY = "notes-demo:signed-in";
const SCOPE = "openid profile notes:read notes:write";

let config;
let metadata;
let jwks;
// { accessToken, refreshToken, expiresAt, scope, idToken, claims } where
// claims are the verified id_token's.
let tokens = null;
let refreshing = null;
let refreshTimer = null;
let nextCursorUrl = null;
// Until main() has decided how this tab starts, it shows the signed-in
// view itself; tokens another tab sends meanwhile are only adopted.
let started = false;
const channel = "BroadcastChannel" in window ? new BroadcastChannel("notes-demo-auth") : null;

function redirectUri() {
  return `${window.location.origin}/callback`;
}

function b64url(bytes) {
  let text = "";
  for (const b of new Uint8Array(bytes)) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomString(byteCount = 32) {
  return b64url(crypto.getRandomValues(new Uint8Array(byteCount)));
}

async function s256(text) {
  return b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
}

function setStatus(message, isError = false) {
  const status = $("status");
  status.textContent = message;
  status.classList.toggle("error", isError);
}

async function postForm(url, fields) {
  return fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(fields),
  });
}

// ---- tokens ---------------------------------------------------------------

function adopt(set, { broadcast = true } = {}) {
  tokens = set;
  sessionStorage.setItem(SIGNED_IN_KEY, "1");
  if (broadcast && channel) channel.postMessage({ type: "tokens", tokens });
  scheduleRefresh();
}

function fromResponse(body, claims, previous = tokens) {
  return {
    accessToken: body.access_token,
    refreshToken: body.refresh_token ?? previous?.refreshToken ?? null,
    expiresAt: Date.now() + body.expires_in * 1000,
    scope: body.scope,
    idToken: body.id_token ?? previous?.idToken ?? null,
    claims: claims ?? previous?.claims ?? null,
  };
}

// ---- id_token ---------------------------------------------------------------

class VerificationError extends Error {}

const HASHES = { 256: "SHA-256", 384: "SHA-384", 512: "SHA-512" };

/**
 * Verifies an id_token and returns its claims (OIDC Core 3.1.3.7). jose
 * checks the signature with a key from the issuer's JWKS (an unknown `kid`
 * refetches it), the `alg` against the ones the issuer advertises, `iss`,
 * `aud` and `exp`/`iat`. `nonce` must be the one this login sent; after a
 * refresh (`previous`), `sub` must be unchanged (OIDC Core 12.2).
 */
async function verifyIdToken(idToken, { nonce, accessToken, previous }) {
  let payload;
  let protectedHeader;
  try {
    ({ payload, protectedHeader } = await jwtVerify(idToken, jwks, {
      issuer: metadata.issuer,
      audience: config.clientId,
      algorithms: metadata.id_token_signing_alg_values_supported,
      requiredClaims: ["sub", "iat", "exp"],
      clockTolerance: 30,
    }));
  } catch (e) {
    throw new VerificationError(`the ID token is not valid (${e.message})`);
  }
  const typ = protectedHeader.typ?.toLowerCase();
  if (typ !== undefined && typ !== "jwt" && typ !== "application/jwt") {
    throw new VerificationError(`the ID token has type ${protectedHeader.typ}`);
  }
  const audiences = [payload.aud].flat();
  if ((payload.azp !== undefined || audiences.length > 1) && payload.azp !== config.clientId) {
    throw new VerificationError("the ID token was issued to another party (azp)");
  }
  if (nonce !== undefined && payload.nonce !== nonce) {
    throw new VerificationError("the ID token's nonce does not match this login");
  }
  if (payload.at_hash !== undefined && payload.at_hash !== (await tokenHash(accessToken, protectedHeader.alg))) {
    throw new VerificationError("the ID token does not belong to the access token (at_hash)");
  }
  if (previous) {
    if (payload.sub !== previous.sub) throw new VerificationError("the refreshed ID token names another user (sub)");
    if (previous.auth_time !== undefined && payload.auth_time !== previous.auth_time) {
      throw new VerificationError("the refreshed ID token has another auth_time");
    }
  }
  return payload;
}

// `at_hash`: the left half of the access token's hash, with the hash of the
// id_token's `alg` (OIDC Core 3.1.3.8).
async function tokenHash(token, alg) {
  const hash = HASHES[String(alg).slice(-3)];
  if (!hash || typeof token !== "string") return null;
  const digest = new Uint8Array(await crypto.subtle.digest(hash, new TextEncoder().encode(token)));
  return b64url(digest.slice(0, digest.length / 2));
}

/** Best effort: a refresh token we will not use is revoked (RFC 7009). */
function revoke(refreshToken) {
  if (!refreshToken || !metadata.revocation_endpoint) return Promise.resolve();
  return postForm(metadata.revocation_endpoint, {
    token: refreshToken,
    token_type_hint: "refresh_token",
    client_id: config.clientId,
  }).catch(() => {});
}

function scheduleRefresh() {
  clearTimeout(refreshTimer);
  if (!tokens?.refreshToken) return;
  // Refresh a minute before expiry (or at 80% of a short lifetime).
  const remaining = tokens.expiresAt - Date.now();
  const delay = Math.max(1000, Math.min(remaining - 60_000, remaining * 0.8));
  refreshTimer = setTimeout(() => refresh().catch(() => {}), delay);
}

// One refresh at a time per tab.
async function refresh() {
  if (refreshing) return refreshing;
  const before = tokens;
  const presented = before?.refreshToken;
  if (!presented) throw new Error("not signed in");
  refreshing = (async () => {
    const response = await postForm(metadata.token_endpoint, {
      grant_type: "refresh_token",
      refresh_token: presented,
      client_id: config.clientId,
    });
    if (!response.ok) {
      // Another tab may have rotated meanwhile and told us.
      if (tokens && tokens.refreshToken !== presented) return tokens;
      signedOut("Your session has ended. Please log in again.");
      throw new Error("refresh refused");
    }
    const body = await response.json();
    let claims;
    if (body.id_token) {
      try {
        claims = await verifyIdToken(body.id_token, { accessToken: body.access_token, previous: before.claims });
      } catch (e) {
        await revoke(body.refresh_token);
        signedOut(`Your session could not be verified: ${e.message}. Please log in again.`);
        throw e;
      }
    }
    adopt(fromResponse(body, claims, before));
    return tokens;
  })();
  try {
    return await refreshing;
  } finally {
    refreshing = null;
  }
}

// Exposed for the browser tests: refresh now (as the timer would).
window.notesDemo = {
  refreshNow: () => refresh().then(() => ({ refreshToken: tokens.refreshToken, accessToken: tokens.accessToken })),
  currentTokens: () => (tokens ? { refreshToken: tokens.refreshToken, accessToken: tokens.accessToken } : null),
  idToken: () => (tokens ? { idToken: tokens.idToken, claims: tokens.claims } : null),
};

// ---- login and logout -------------------------------------------------------

async function startLogin() {
  const verifier = randomString(32);
  const state = randomString(16);
  const nonce = randomString(16);
  sessionStorage.setItem(LOGIN_KEY, JSON.stringify({ verifier, state, nonce }));
  const url = new URL(metadata.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: config.clientId,
    redirect_uri: redirectUri(),
    scope: SCOPE,
    state,
    nonce,
    code_challenge: await s256(verifier),
    code_challenge_method: "S256",
  }).toString();
  window.location.assign(url.toString());
}

async function finishLogin(params) {
  const pending = JSON.parse(sessionStorage.getItem(LOGIN_KEY) ?? "null");
  sessionStorage.removeItem(LOGIN_KEY);
  window.history.replaceState(null, "", "/");
  if (!pending || params.get("state") !== pending.state) {
    throw new Error("The login response does not match the request (state).");
  }
  if (params.get("iss") !== metadata.issuer) {
    throw new Error("The login response came from an unexpected issuer.");
  }
  if (params.has("error")) {
    throw new Error(params.get("error") === "access_denied" ? "Access was denied." : `Login failed: ${params.get("error")}`);
  }
  const response = await postForm(metadata.token_endpoint, {
    grant_type: "authorization_code",
    code: params.get("code") ?? "",
    redirect_uri: redirectUri(),
    client_id: config.clientId,
    code_verifier: pending.verifier,
  });
  if (!response.ok) throw new Error("The login could not be completed.");
  const body = await response.json();
  let claims;
  try {
    if (!body.id_token) throw new VerificationError("the issuer sent no ID token");
    claims = await verifyIdToken(body.id_token, { nonce: pending.nonce, accessToken: body.access_token });
  } catch (e) {
    await revoke(body.refresh_token);
    throw new Error(`The sign-in could not be verified: ${e.message}.`);
  }
  adopt(fromResponse(body, claims));
}

// RP-Initiated Logout 1.0: the issuer asks the user to confirm, ends its
// session and sends the browser back to post_logout_redirect_uri with our
// `state`.
async function logout() {
  const current = tokens;
  tokens = null;
  clearTimeout(refreshTimer);
  sessionStorage.removeItem(SIGNED_IN_KEY);
  if (channel) channel.postMessage({ type: "logout" });
  await revoke(current?.refreshToken);
  const state = randomString(16);
  sessionStorage.setItem(LOGOUT_KEY, state);
  const url = new URL(metadata.end_session_endpoint);
  url.search = new URLSearchParams({
    ...(current?.idToken ? { id_token_hint: current.idToken } : {}),
    client_id: config.clientId,
    post_logout_redirect_uri: `${window.location.origin}/`,
    state,
  }).toString();
  window.location.assign(url.toString());
}

function finishLogout(params) {
  const expected = sessionStorage.getItem(LOGOUT_KEY);
  sessionStorage.removeItem(LOGOUT_KEY);
  window.history.replaceState(null, "", "/");
  if (!expected || params.get("state") !== expected) {
    throw new Error("The logout response does not match the request (state).");
  }
}

function signedOut(message = "", isError = Boolean(message)) {
  tokens = null;
  clearTimeout(refreshTimer);
  sessionStorage.removeItem(SIGNED_IN_KEY);
  $("app").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("whoami").textContent = "";
  $("notes").replaceChildren();
  setStatus(message, isError);
}

// ---- API --------------------------------------------------------------------

// A call with the access token: to the notes API (`path`) or to `url`.
async function api(path, { method = "GET", body, retried = false, url } = {}) {
  if (!tokens) throw new Error("not signed in");
  const response = await fetch(url ?? `${config.api}${path}`, {
    method,
    headers: {
      Authorization: `Bearer ${tokens.accessToken}`,
      ...(body ? { "Content-Type": "application/json" } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (response.status === 401 && !retried && tokens?.refreshToken) {
    await refresh();
    return api(path, { method, body, retried: true, url });
  }
  return response;
}

async function problemText(response) {
  try {
    const problem = await response.json();
    return problem.detail ?? problem.title ?? `HTTP ${response.status}`;
  } catch {
    return `HTTP ${response.status}`;
  }
}

function noteElement(note) {
  const item = document.createElement("li");
  item.dataset.noteId = note.id;
  const title = document.createElement("p");
  title.className = "note-title";
  title.textContent = note.title;
  const body = document.createElement("p");
  body.className = "note-body";
  body.textContent = note.body;
  const actions = document.createElement("div");
  actions.className = "note-actions";
  const edit = document.createElement("button");
  edit.type = "button";
  edit.className = "secondary";
  edit.textContent = "Edit";
  edit.addEventListener("click", () => editNote(item, note));
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "danger";
  remove.textContent = "Delete";
  remove.addEventListener("click", () => deleteNote(note));
  actions.append(edit, remove);
  item.append(title, body, actions);
  return item;
}

function editNote(item, note) {
  const form = document.createElement("form");
  form.className = "edit-note";
  const title = document.createElement("input");
  title.name = "title";
  title.value = note.title;
  title.maxLength = 200;
  title.required = true;
  const body = document.createElement("textarea");
  body.name = "body";
  body.value = note.body;
  body.rows = 4;
  const save = document.createElement("button");
  save.type = "submit";
  save.textContent = "Save";
  form.append(title, body, save);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const response = await api(`/notes/${note.id}`, { method: "PUT", body: { title: title.value, body: body.value } });
    if (!response.ok) return setStatus(await problemText(response), true);
    item.replaceWith(noteElement(await response.json()));
    setStatus("Note saved.");
  });
  item.replaceChildren(form);
  title.focus();
}

async function deleteNote(note) {
  const response = await api(`/notes/${note.id}`, { method: "DELETE" });
  if (!response.ok) return setStatus(await problemText(response), true);
  document.querySelector(`li[data-note-id="${CSS.escape(note.id)}"]`)?.remove();
  setStatus("Note deleted.");
}

// The next page, if the API announced one. The token is only ever sent to
// the API's own origin, whatever the header says.
function nextLink(response) {
  const link = response.headers.get("Link");
  const match = link && /<([^>]+)>;\s*rel="next"/.exec(link);
  if (!match) return null;
  const next = new URL(match[1], config.api);
  return next.origin === new URL(config.api).origin ? next.toString() : null;
}

async function loadNotes({ more = false } = {}) {
  const response = await api("/notes", more && nextCursorUrl ? { url: nextCursorUrl } : {});
  if (!response.ok) return setStatus(await problemText(response), true);
  const notes = await response.json();
  const list = $("notes");
  if (!more) list.replaceChildren();
  list.append(...notes.map(noteElement));
  nextCursorUrl = nextLink(response);
  $("more").hidden = !nextCursorUrl;
}

// The user's claims from the userinfo endpoint (OIDC Core 5.3); its `sub`
// must be the id_token's (5.3.4), or the answer is not about this user.
async function userinfo() {
  const response = await api(null, { url: metadata.userinfo_endpoint });
  if (!response.ok) throw new Error(`The user's details could not be loaded (HTTP ${response.status}).`);
  const claims = await response.json();
  if (!tokens?.claims || claims.sub !== tokens.claims.sub) {
    throw new Error("The user's details are for another user.");
  }
  return claims;
}

async function showSignedIn() {
  let claims;
  try {
    claims = await userinfo();
  } catch (e) {
    return setStatus(e.message, true);
  }
  $("whoami").textContent = `Signed in as ${claims.preferred_username ?? claims.sub}`;
  $("login").hidden = true;
  $("logout").hidden = false;
  $("app").hidden = false;
  await loadNotes();
}

// ---- tabs -------------------------------------------------------------------

function askOtherTabs(timeoutMs = 300) {
  if (!channel) return Promise.resolve(null);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      channel.removeEventListener("message", onMessage);
      resolve(null);
    }, timeoutMs);
    function onMessage(event) {
      if (event.data?.type === "tokens" && event.data.tokens) {
        clearTimeout(timer);
        channel.removeEventListener("message", onMessage);
        resolve(event.data.tokens);
      }
    }
    channel.addEventListener("message", onMessage);
    channel.postMessage({ type: "hello" });
  });
}

function listenToOtherTabs() {
  if (!channel) return;
  channel.addEventListener("message", (event) => {
    const message = event.data ?? {};
    if (message.type === "hello" && tokens) channel.postMessage({ type: "tokens", tokens });
    if (message.type === "tokens" && message.tokens) {
      const wasSignedOut = !tokens;
      adopt(message.tokens, { broadcast: false });
      if (wasSignedOut && started) showSignedIn().catch(() => {});
    }
    if (message.type === "logout") signedOut("You logged out in another tab.");
  });
}

// ---- start ------------------------------------------------------------------

async function main() {
  $("login").addEventListener("click", () => startLogin().catch((e) => setStatus(e.message, true)));
  $("logout").addEventListener("click", () => logout().catch((e) => signedOut(e.message)));
  $("more").addEventListener("click", () => loadNotes({ more: true }));
  $("new-note").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const response = await api("/notes", {
      method: "POST",
      body: { title: form.elements.title.value, body: form.elements.body.value },
    });
    if (!response.ok) return setStatus(await problemText(response), true);
    $("notes").prepend(noteElement(await response.json()));
    form.reset();
    setStatus("Note added.");
  });

  config = await (await fetch("/config.json")).json();
  // OIDC Discovery 1.0 section 4: the issuer with the well-known path
  // appended, and the document must name exactly that issuer.
  const discovery = await fetch(`${config.issuer.replace(/\/$/, "")}/.well-known/openid-configuration`);
  if (!discovery.ok) throw new Error(`The issuer's metadata could not be loaded (HTTP ${discovery.status}).`);
  metadata = await discovery.json();
  if (metadata.issuer !== config.issuer) throw new Error("The issuer's metadata does not match its URL.");
  jwks = createRemoteJWKSet(new URL(metadata.jwks_uri));
  listenToOtherTabs();

  const params = new URLSearchParams(window.location.search);
  if (window.location.pathname === "/callback") {
    try {
      await finishLogin(params);
    } catch (e) {
      started = true;
      signedOut(e.message);
      return;
    }
  } else if (params.has("state")) {
    // Back from the end_session_endpoint.
    started = true;
    try {
      finishLogout(params);
    } catch (e) {
      signedOut(e.message);
      return;
    }
    signedOut("You are signed out.", false);
    return;
  } else {
    const shared = await askOtherTabs();
    if (shared) {
      adopt(shared, { broadcast: false });
    } else if (sessionStorage.getItem(SIGNED_IN_KEY)) {
      // A reload: log in again (quick while the auth-server session lives).
      return startLogin();
    }
  }
  started = true;
  if (tokens) {
    await showSignedIn();
  } else {
    signedOut();
  }
}

main().catch((e) => setStatus(`The app could not start: ${e.message}`, true));
