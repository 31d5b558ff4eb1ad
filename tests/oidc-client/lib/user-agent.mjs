// The user's side of the code flow without a browser: plain fetch with
// redirects off, cookies kept by hand, and the auth-server's HTML forms
// (INTERFACE.md: login `username`, `password`, hidden `csrf_token`; consent
// buttons `decision` = `approve` | `deny`; logout one form with a hidden
// `csrf_token`) read and submitted as a browser would.

import assert from 'node:assert/strict';

const ENTITIES = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

function unescapeHtml(text) {
  return text.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (whole, name) => {
    if (name[0] === '#') {
      return String.fromCodePoint(name[1].toLowerCase() === 'x' ? parseInt(name.slice(2), 16) : parseInt(name.slice(1), 10));
    }
    return ENTITIES[name.toLowerCase()] ?? whole;
  });
}

function attributes(tag) {
  const found = {};
  for (const [, name, , quoted, single, bare] of tag.matchAll(/([a-zA-Z_:-]+)(\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?/g)) {
    found[name.toLowerCase()] = unescapeHtml(quoted ?? single ?? bare ?? '');
  }
  return found;
}

/** The page's only form: its method, absolute action and hidden inputs. */
export function parseForm(html, pageUrl) {
  const forms = [...html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)];
  assert.equal(forms.length, 1, `expected one form on ${pageUrl}:\n${html.slice(0, 2000)}`);
  const [, formAttributes, inner] = forms[0];
  const form = attributes(formAttributes);
  const hidden = {};
  for (const [, input] of inner.matchAll(/<input\b([^>]*)>/gi)) {
    const a = attributes(input);
    if (a.type === 'hidden' && a.name) hidden[a.name] = a.value ?? '';
  }
  const buttons = [...inner.matchAll(/<button\b([^>]*)>/gi)].map(([, b]) => attributes(b));
  return {
    method: (form.method ?? 'get').toLowerCase(),
    action: new URL(form.action ?? '', pageUrl).href,
    hidden,
    buttons,
  };
}

export class UserAgent {
  constructor() {
    this.cookies = new Map();
  }

  keep(response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';').map((p) => p.trim());
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      const gone = attrs.some((a) => /^max-age=(0|-\d+)$/i.test(a)) ||
        attrs.some((a) => /^expires=/i.test(a) && Date.parse(a.slice(8)) <= Date.now());
      if (gone) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  /** One request, no redirect followed: { status, location, url, html }. */
  async request(url, { method = 'GET', form } = {}) {
    const headers = {};
    if (this.cookies.size) headers.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    let body;
    if (form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(form).toString();
    }
    const response = await fetch(url, { method, headers, body, redirect: 'manual' });
    this.keep(response);
    const location = response.headers.get('location');
    return {
      status: response.status,
      location: location === null ? null : new URL(location, url).href,
      url: String(url),
      html: await response.text(),
    };
  }

  /** Follows redirects while they stay on `origin`; returns the last answer. */
  async follow(url, origin, options) {
    let answer = await this.request(url, options);
    for (let hops = 0; [301, 302, 303, 307, 308].includes(answer.status); hops += 1) {
      assert.ok(hops < 10, 'too many redirects');
      if (new URL(answer.location).origin !== origin) return answer;
      answer = await this.request(answer.location);
    }
    return answer;
  }

  /** Submits the page's form with `fields` added to its hidden inputs. */
  submit(page, fields) {
    const form = parseForm(page.html, page.url);
    assert.equal(form.method, 'post', `the form on ${page.url} posts`);
    return this.request(form.action, { method: 'POST', form: { ...form.hidden, ...fields } });
  }

  /**
   * From the authorization URL to the redirect back to the client: signs
   * in on the login page when asked, answers the consent page when shown
   * (`decision`). Returns the redirect URL the client receives.
   */
  async authorize(authorizationUrl, { username, password }, { decision = 'approve' } = {}) {
    const issuer = new URL(authorizationUrl).origin;
    let page = await this.follow(authorizationUrl, issuer);
    if (page.status === 200 && /name="password"/.test(page.html)) {
      assert.ok(page.url.startsWith(`${issuer}/login`), `login page at ${page.url}`);
      const form = parseForm(page.html, page.url);
      assert.ok(form.hidden.csrf_token, 'the login form has a csrf_token');
      const signedIn = await this.submit(page, { username, password });
      assert.equal(signedIn.status, 303, `sign-in answered ${signedIn.status}: ${signedIn.html.slice(0, 500)}`);
      page = await this.follow(signedIn.location, issuer);
    }
    if (page.status === 200 && /name="decision"/.test(page.html)) {
      const form = parseForm(page.html, page.url);
      assert.ok(form.buttons.some((b) => b.name === 'decision' && b.value === decision), `a ${decision} button`);
      const decided = await this.submit(page, { decision });
      assert.equal(decided.status, 303, `consent answered ${decided.status}`);
      page = decided;
    }
    assert.ok([302, 303].includes(page.status) && page.location, `expected a redirect to the client, got ${page.status} at ${page.url}:\n${page.html.slice(0, 1000)}`);
    return new URL(page.location);
  }
}
