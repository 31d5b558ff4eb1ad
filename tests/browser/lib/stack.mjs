// Starts an isolated copy of the whole system for one test file: the
// auth-server, the resource-server and two spa-server instances (the
// first-party demo app and a third-party app that must ask for consent),
// each on a free port chosen now, with their own freshly named databases,
// a user or two and the two public clients (allowed `openid`) registered
// through the auth-server CLI. `stop()` kills everything and drops the
// databases.
//
// Uses the debug binaries under target/debug (build them first:
// `cargo build --bin auth-server --bin resource-server --bin spa-server`,
// which tests/browser/run.sh does). Server logs go to
// target/browser-artifacts/logs/<name>/.
//
// PostgreSQL: the server given by TEST_DATABASE_URL (default
// postgres://127.0.0.1), as for the Rust tests.

import { spawn, execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const ARTIFACTS = path.join(ROOT, 'target', 'browser-artifacts');
const BIN = path.join(ROOT, 'target', 'debug');
const BINARIES = ['auth-server', 'resource-server', 'spa-server'];

// Ports the local demo (examples/demo.sh) uses by default.
const RESERVED_PORTS = new Set([8080, 8081, 5173, 9080, 9081]);

const PG_BASE = (process.env.TEST_DATABASE_URL ?? 'postgres://127.0.0.1').replace(/\/+$/, '');

function checkBinaries() {
  const missing = BINARIES.filter((b) => !fs.existsSync(path.join(BIN, b)));
  if (missing.length) {
    throw new Error(
      `missing ${missing.map((b) => `target/debug/${b}`).join(', ')}; build them first: ` +
        'cargo build --bin auth-server --bin resource-server --bin spa-server (or run tests/browser/run.sh)',
    );
  }
}

/** `count` distinct free loopback ports, none of the demo's. */
async function freePorts(count) {
  const servers = [];
  const ports = [];
  try {
    while (ports.length < count) {
      const server = net.createServer();
      await new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', resolve);
      });
      servers.push(server);
      const { port } = server.address();
      if (!RESERVED_PORTS.has(port)) ports.push(port);
    }
  } finally {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  }
  return ports;
}

function run(file, args, { env, input = '', cwd } = {}) {
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { env, cwd, timeout: 60_000, maxBuffer: 1 << 20 }, (error, stdout, stderr) => {
      if (error) {
        const shown = [path.basename(file), ...args].join(' ');
        reject(new Error(`${shown} failed (${error.code ?? error.signal}): ${stderr.trim() || error.message}`));
      } else {
        resolve(stdout);
      }
    });
    child.stdin.end(input);
  });
}

function psql(sql) {
  return run('psql', ['-q', '-X', '-v', 'ON_ERROR_STOP=1', '-d', `${PG_BASE}/postgres`, '-c', sql]);
}

/** The child environment: only what the binaries need, nothing inherited
 * from AUTH_*, RESOURCE_* or SPA_* variables of the caller. */
function baseEnv() {
  const env = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (['PATH', 'HOME', 'USER', 'LANG', 'TZ', 'RUST_LOG', 'RUST_BACKTRACE'].includes(key) || key.startsWith('PG')) {
      env[key] = value;
    }
  }
  return env;
}

function password() {
  return randomBytes(18).toString('base64url'); // 24 characters
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Children of every stack in this process, killed on the way out whatever
// happens (a failed `before`, an uncaught error, Ctrl-C).
const live = new Set();
function killAllNow() {
  for (const child of live) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
}
process.once('exit', killAllNow);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    killAllNow();
    process.exit(130);
  });
}

class Stack {
  constructor(name) {
    this.name = name;
    this.id = `browser_${randomBytes(5).toString('hex')}`;
    this.databases = [`${this.id}_auth`, `${this.id}_resource`];
    this.logDir = path.join(ARTIFACTS, 'logs', name);
    this.children = [];
    this.createdDatabases = false;
  }

  tail(logFile, lines = 30) {
    try {
      return fs.readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  spawnServer(binary, env, args = []) {
    const logFile = path.join(this.logDir, `${env.SPA_LISTEN ? `spa-server-${env.SPA_LISTEN.split(':')[1]}` : binary}.log`);
    const out = fs.openSync(logFile, 'w');
    const child = spawn(path.join(BIN, binary), args, { env, cwd: this.logDir, stdio: ['ignore', out, out] });
    fs.closeSync(out);
    const entry = { binary, child, logFile, exited: null };
    child.once('exit', (code, signal) => {
      entry.exited = { code, signal };
      live.delete(child);
    });
    child.once('error', (error) => {
      entry.exited = { error };
      live.delete(child);
    });
    live.add(child);
    this.children.push(entry);
    return entry;
  }

  async waitReady(entry, url, timeoutMs = 60_000) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (entry.exited) {
        throw new Error(
          `${entry.binary} exited during start-up (${JSON.stringify(entry.exited)}); log ${entry.logFile}:\n${this.tail(entry.logFile)}`,
        );
      }
      try {
        const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
        if (response.ok) return;
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    throw new Error(`timed out waiting for ${url} (${entry.binary}); log ${entry.logFile}:\n${this.tail(entry.logFile)}`);
  }

  async start() {
    checkBinaries();
    fs.rmSync(this.logDir, { recursive: true, force: true });
    fs.mkdirSync(this.logDir, { recursive: true });
    try {
      await psql('SELECT 1');
    } catch (e) {
      throw new Error(`PostgreSQL is not reachable at ${PG_BASE} (set TEST_DATABASE_URL): ${e.message}`);
    }

    const [authPort, authAdminPort, apiPort, apiAdminPort, spaPort, partnerPort] = await freePorts(6);
    const issuer = `http://127.0.0.1:${authPort}`;
    const api = `http://127.0.0.1:${apiPort}/api`;
    this.issuer = issuer;
    this.api = api;
    this.spa = { url: `http://127.0.0.1:${spaPort}` };
    this.partner = { url: `http://127.0.0.1:${partnerPort}` };
    this.admin = { auth: `http://127.0.0.1:${authAdminPort}`, resource: `http://127.0.0.1:${apiAdminPort}` };

    const authEnv = {
      ...baseEnv(),
      AUTH_DATABASE_URL: `${PG_BASE}/${this.databases[0]}`,
      AUTH_LISTEN: `127.0.0.1:${authPort}`,
      AUTH_ADMIN_LISTEN: `127.0.0.1:${authAdminPort}`,
      AUTH_ISSUER: issuer,
      AUTH_KEY_ENCRYPTION_KEY: randomBytes(32).toString('hex'),
      AUTH_DEFAULT_AUDIENCE: api,
      AUTH_LOG_FORMAT: 'json',
    };
    const cli = (args, input) => run(path.join(BIN, 'auth-server'), args, { env: authEnv, input, cwd: this.logDir });

    // The first CLI command creates and migrates the auth database.
    this.createdDatabases = true;
    this.users = {};
    for (const username of ['alice', 'bob']) {
      const secret = password();
      await cli(['user', 'create', '--username', username, '--role', 'user', '--password-stdin'], secret);
      this.users[username] = { username, password: secret };
    }
    const scopes = ['--scope', 'openid', '--scope', 'profile', '--scope', 'notes:read', '--scope', 'notes:write'];
    const register = async (name, app, firstParty) => {
      const out = await cli([
        'client', 'create', '--name', name, '--public', ...(firstParty ? ['--first-party'] : []),
        '--redirect-uri', `${app.url}/callback`, '--post-logout-redirect-uri', `${app.url}/`, ...scopes,
      ]);
      return JSON.parse(out).client_id;
    };
    this.spa.clientId = await register('Notes demo', this.spa, true);
    this.spa.name = 'Notes demo';
    this.partner.clientId = await register('Partner Notes', this.partner, false);
    this.partner.name = 'Partner Notes';

    const auth = this.spawnServer('auth-server', authEnv, ['serve']);
    await this.waitReady(auth, `${this.admin.auth}/healthz`);

    const resource = this.spawnServer('resource-server', {
      ...baseEnv(),
      RESOURCE_DATABASE_URL: `${PG_BASE}/${this.databases[1]}`,
      RESOURCE_LISTEN: `127.0.0.1:${apiPort}`,
      RESOURCE_ADMIN_LISTEN: `127.0.0.1:${apiAdminPort}`,
      RESOURCE_ISSUER: issuer,
      RESOURCE_AUDIENCE: api,
      RESOURCE_CORS_ORIGINS: `${this.spa.url},${this.partner.url}`,
      RESOURCE_LOG_FORMAT: 'json',
    }, ['serve']);
    await this.waitReady(resource, `${this.admin.resource}/healthz`);

    for (const app of [this.spa, this.partner]) {
      const entry = this.spawnServer('spa-server', {
        ...baseEnv(),
        SPA_LISTEN: app.url.replace('http://', ''),
        SPA_CLIENT_ID: app.clientId,
        SPA_ISSUER: issuer,
        SPA_API: api,
      });
      await this.waitReady(entry, `${app.url}/config.json`);
    }
    // OpenID Connect Discovery 1.0: what the apps read too.
    const discovery = await fetch(`${issuer}/.well-known/openid-configuration`);
    if (!discovery.ok) throw new Error(`${issuer}/.well-known/openid-configuration answered ${discovery.status}`);
    this.metadata = await discovery.json();
    return this;
  }

  /** Servers that died while the tests ran (a crash is a failure too). */
  crashed() {
    return this.children
      .filter((c) => c.exited)
      .map((c) => `${c.binary} exited (${JSON.stringify(c.exited)}); log ${c.logFile}:\n${this.tail(c.logFile)}`);
  }

  async stop() {
    await Promise.all(
      this.children.map(async (entry) => {
        if (entry.exited) return;
        const gone = new Promise((resolve) => entry.child.once('exit', resolve));
        entry.child.kill('SIGTERM');
        const timer = setTimeout(() => entry.child.kill('SIGKILL'), 5000);
        await gone;
        clearTimeout(timer);
      }),
    );
    if (this.createdDatabases) {
      for (const db of this.databases) {
        await psql(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`).catch((e) => {
          process.stderr.write(`warning: could not drop database ${db}: ${e.message}\n`);
        });
      }
    }
  }
}

/** Starts a fresh system; on a failed start everything started is stopped. */
export async function startStack(name) {
  const stack = new Stack(name);
  try {
    return await stack.start();
  } catch (e) {
    await stack.stop();
    throw e;
  }
}
