// Demo single-page app: OAuth 2.1 authorization code flow with PKCE (S256)
// against the auth-server, then the notes API on the resource server.
//
// - Tokens live in memory only. The PKCE verifier and `state` of a login in
//   progress are kept in sessionStorage across the redirect and removed on
//   return; nothing else is stored.
// - `state` and `iss` (RFC 9207) are checked on return.
// - Tabs of the app share one token set over a BroadcastChannel, so two tabs
//   may refresh at the same moment with the same refresh token; the server's
//   grace window gives both the same successor.
// - User content is rendered with textContent only; the page's CSP forbids
//   inline script and requires Trusted Types, so an HTML sink would throw.

const $ = (id) => document.getElementById(id);
const LOGIN_KEY = "notes-demo:login";
const SIGNED_IN_KEY = "notes-demo:signed-in";

let config;
let metadata;
let tokens = null; // { accessToken, refreshToken, expiresAt, scope }
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

function fromResponse(body) {
  return {
    accessToken: body.access_token,
    refreshToken: body.refresh_token ?? tokens?.refreshToken ?? null,
    expiresAt: Date.now() + body.expires_in * 1000,
    scope: body.scope,
  };
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
  const presented = tokens?.refreshToken;
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
    adopt(fromResponse(await response.json()));
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
};

// ---- login and logout -------------------------------------------------------

async function startLogin() {
  const verifier = randomString(32);
  const state = randomString(16);
  sessionStorage.setItem(LOGIN_KEY, JSON.stringify({ verifier, state }));
  const url = new URL(metadata.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: config.clientId,
    redirect_uri: redirectUri(),
    scope: "profile notes:read notes:write",
    state,
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
  adopt(fromResponse(await response.json()));
}

async function logout() {
  const refreshToken = tokens?.refreshToken;
  tokens = null;
  clearTimeout(refreshTimer);
  sessionStorage.removeItem(SIGNED_IN_KEY);
  if (channel) channel.postMessage({ type: "logout" });
  if (refreshToken) {
    await postForm(metadata.revocation_endpoint, {
      token: refreshToken,
      token_type_hint: "refresh_token",
      client_id: config.clientId,
    }).catch(() => {});
  }
  const url = new URL("/logout", metadata.issuer);
  url.search = new URLSearchParams({
    client_id: config.clientId,
    post_logout_redirect_uri: `${window.location.origin}/`,
  }).toString();
  window.location.assign(url.toString());
}

function signedOut(message = "") {
  tokens = null;
  clearTimeout(refreshTimer);
  sessionStorage.removeItem(SIGNED_IN_KEY);
  $("app").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("whoami").textContent = "";
  $("notes").replaceChildren();
  setStatus(message, Boolean(message));
}

// ---- API --------------------------------------------------------------------

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

async function showSignedIn() {
  const me = await api("/me");
  if (!me.ok) return setStatus(await problemText(me), true);
  const profile = await me.json();
  $("whoami").textContent = `Signed in as ${profile.username ?? profile.sub}`;
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
  $("logout").addEventListener("click", () => logout());
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
  const discovery = await fetch(new URL("/.well-known/oauth-authorization-server", config.issuer));
  metadata = await discovery.json();
  if (metadata.issuer !== config.issuer) throw new Error("The issuer's metadata does not match its URL.");
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
