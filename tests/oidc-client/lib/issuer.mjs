// Starts a fresh auth-server for one test file (the same recipe as
// tests/browser/lib/stack.mjs, without the resource server and the apps):
// a database of its own on TEST_DATABASE_URL (default postgres://127.0.0.1),
// dropped afterwards; free loopback ports; a user created with
// `user create --password-stdin`; and, through the CLI, a first-party public
// client and a third-party confidential client, both allowed `openid`.
// The relying party's redirect and post-logout URIs point at a port nothing
// listens on: the tests read the redirects, they never follow them.
//
// Uses target/debug/auth-server (build it first; tests/oidc-client/run.sh
// says how). Its log goes to target/oidc-client-artifacts/<name>/.

import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const BINARY = path.join(ROOT, 'target', 'debug', 'auth-server');
const ARTIFACTS = path.join(ROOT, 'target', 'oidc-client-artifacts');
const PG_BASE = (process.env.TEST_DATABASE_URL ?? 'postgres://127.0.0.1').replace(/\/+$/, '');
// Ports the local demo (examples/demo.sh) uses by default.
const RESERVED_PORTS = new Set([8080, 8081, 5173, 9080, 9081]);
const SCOPES = ['openid', 'profile', 'notes:read', 'notes:write'];

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

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
        reject(new Error(`${[path.basename(file), ...args].join(' ')} failed (${error.code ?? error.signal}): ${stderr.trim() || error.message}`));
      } else {
        resolve(stdout);
      }
    });
    child.stdin.end(input);
  });
}

const psql = (sql) => run('psql', ['-q', '-X', '-v', 'ON_ERROR_STOP=1', '-d', `${PG_BASE}/postgres`, '-c', sql]);

/** Only what the binary needs; nothing from the caller's AUTH_* settings. */
function baseEnv() {
  const env = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (['PATH', 'HOME', 'USER', 'LANG', 'TZ', 'RUST_LOG', 'RUST_BACKTRACE'].includes(key) || key.startsWith('PG')) {
      env[key] = value;
    }
  }
  return env;
}

const live = new Set();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

class Issuer {
  constructor(name) {
    this.database = `oidc_client_${randomBytes(5).toString('hex')}_auth`;
    this.logDir = path.join(ARTIFACTS, name);
    this.logFile = path.join(this.logDir, 'auth-server.log');
    this.child = null;
    this.exited = null;
    this.createdDatabase = false;
  }

  tail(lines = 30) {
    try {
      return fs.readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  async start() {
    if (!fs.existsSync(BINARY)) {
      throw new Error('missing target/debug/auth-server; build it first: cargo build --bin auth-server (or run tests/oidc-client/run.sh)');
    }
    fs.rmSync(this.logDir, { recursive: true, force: true });
    fs.mkdirSync(this.logDir, { recursive: true });
    try {
      await psql('SELECT 1');
    } catch (e) {
      throw new Error(`PostgreSQL is not reachable at ${PG_BASE} (set TEST_DATABASE_URL): ${e.message}`);
    }
    const [port, adminPort, rpPort] = await freePorts(3);
    this.url = `http://127.0.0.1:${port}`;
    const admin = `http://127.0.0.1:${adminPort}`;
    // The relying party's own URLs (nothing listens there).
    const rp = `http://127.0.0.1:${rpPort}`;
    const env = {
      ...baseEnv(),
      AUTH_DATABASE_URL: `${PG_BASE}/${this.database}`,
      AUTH_LISTEN: `127.0.0.1:${port}`,
      AUTH_ADMIN_LISTEN: `127.0.0.1:${adminPort}`,
      AUTH_ISSUER: this.url,
      AUTH_KEY_ENCRYPTION_KEY: randomBytes(32).toString('hex'),
      AUTH_DEFAULT_AUDIENCE: 'http://127.0.0.1:8081/api',
      AUTH_LOG_FORMAT: 'json',
    };
    const cli = (args, input) => run(BINARY, args, { env, input, cwd: this.logDir });

    // The first CLI command creates and migrates the database.
    this.createdDatabase = true;
    this.user = { username: 'carol', password: randomBytes(18).toString('base64url') };
    await cli(['user', 'create', '--username', this.user.username, '--role', 'user', '--password-stdin'], this.user.password);

    const scopes = SCOPES.flatMap((s) => ['--scope', s]);
    const register = async (name, kind, { firstParty }) => {
      const client = {
        name,
        redirectUri: `${rp}/${kind}/callback`,
        postLogoutRedirectUri: `${rp}/${kind}/signed-out`,
      };
      const out = JSON.parse(
        await cli([
          'client', 'create', '--name', name, `--${kind}`, ...(firstParty ? ['--first-party'] : []),
          '--redirect-uri', client.redirectUri, '--post-logout-redirect-uri', client.postLogoutRedirectUri, ...scopes,
        ]),
      );
      client.clientId = out.client_id;
      client.clientSecret = out.client_secret;
      return client;
    };
    this.publicClient = await register('OIDC RP (public)', 'public', { firstParty: true });
    this.confidentialClient = await register('OIDC RP (confidential)', 'confidential', { firstParty: false });
    if (!this.confidentialClient.clientSecret) throw new Error('client create --confidential printed no client_secret');

    const out = fs.openSync(this.logFile, 'w');
    this.child = spawn(BINARY, ['serve'], { env, cwd: this.logDir, stdio: ['ignore', out, out] });
    fs.closeSync(out);
    live.add(this.child);
    this.child.once('exit', (code, signal) => {
      this.exited = { code, signal };
      live.delete(this.child);
    });
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (this.exited) throw new Error(`auth-server exited during start-up (${JSON.stringify(this.exited)}):\n${this.tail()}`);
      try {
        if ((await fetch(`${admin}/healthz`, { signal: AbortSignal.timeout(2000) })).ok) break;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for the auth-server:\n${this.tail()}`);
      await sleep(100);
    }
    return this;
  }

  async stop() {
    if (this.child && !this.exited) {
      const gone = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
      await gone;
      clearTimeout(timer);
    }
    if (this.createdDatabase) {
      await psql(`DROP DATABASE IF EXISTS "${this.database}" WITH (FORCE)`).catch((e) => {
        process.stderr.write(`warning: could not drop database ${this.database}: ${e.message}\n`);
      });
    }
  }
}

/** A fresh issuer; on a failed start whatever was started is stopped. */
export async function startIssuer(name) {
  const issuer = new Issuer(name);
  try {
    return await issuer.start();
  } catch (e) {
    await issuer.stop();
    throw e;
  }
}
