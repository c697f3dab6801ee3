// A real registry (Debian's docker-registry, the CNCF distribution server) on a free loopback
// port, for tests and benchmarks. Nothing already running on the machine is used.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createPrivateKey, randomUUID, sign, X509Certificate } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitUntil } from './load.ts';

export interface Registry {
  /** `127.0.0.1:PORT` */
  host: string;
  /** The CA file to trust, with `tls`. */
  ca?: string;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface RegistryOptions {
  /** Require Basic auth with this user (an htpasswd file is made with Apache's htpasswd). */
  basicAuth?: { username: string; password: string };
  /** Require tokens from this issuer (see startTokenIssuer). */
  tokenAuth?: TokenIssuer;
  /** Serve HTTPS with a certificate from a CA made for the test; `ca` in the result is its file. */
  tls?: boolean;
}

export interface TokenIssuer {
  realm: string;
  service: string;
  issuer: string;
  certFile: string;
  /** Scopes asked for, as the issuer saw them. */
  requests: string[];
  stop(): Promise<void>;
}

const openssl = (...args: string[]): void => {
  execFileSync('openssl', args, { stdio: 'ignore' });
};

/**
 * A small token issuer, as the distribution spec's token auth uses: it grants what a scope asks
 * for to the one user, and nothing to anyone else. Tokens are RS256 JWTs whose x5c header carries
 * the certificate the registry is told to trust.
 */
export async function startTokenIssuer(user: { username: string; password: string }): Promise<TokenIssuer> {
  const dir = mkdtempSync(join(tmpdir(), 'hoist-token-'));
  const [keyFile, certFile] = [join(dir, 'key.pem'), join(dir, 'cert.pem')];
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', '/CN=hoist-token-issuer');
  const key = createPrivateKey(readFileSync(keyFile));
  const certDer = new X509Certificate(readFileSync(certFile)).raw.toString('base64');
  const requests: string[] = [];
  const base64url = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url');
  const server = createHttpServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    const scope = url.searchParams.get('scope') ?? '';
    requests.push(scope);
    const expected = `Basic ${Buffer.from(`${user.username}:${user.password}`).toString('base64')}`;
    const granted = request.headers.authorization === expected;
    const [type, name, actions] = scope.split(':');
    const now = Math.floor(Date.now() / 1000);
    const claims = {
      iss: 'hoist-test-issuer', sub: granted ? user.username : '', aud: 'hoist-test-registry', exp: now + 300, nbf: now - 10, iat: now,
      jti: randomUUID(), access: granted && type ? [{ type, name, actions: (actions ?? '').split(',') }] : [],
    };
    const unsigned = `${base64url({ typ: 'JWT', alg: 'RS256', x5c: [certDer] })}.${base64url(claims)}`;
    const token = `${unsigned}.${sign('sha256', Buffer.from(unsigned), key).toString('base64url')}`;
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ token, expires_in: 300 }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    realm: `http://127.0.0.1:${port}/token`, service: 'hoist-test-registry', issuer: 'hoist-test-issuer', certFile, requests,
    stop: async () => {
      await new Promise((resolve) => server.close(resolve));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A CA and a certificate for 127.0.0.1 signed by it. */
function makeCertificates(dir: string): { ca: string; cert: string; key: string } {
  const file = (name: string): string => join(dir, name);
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', file('ca.key'), '-out', file('ca.pem'), '-days', '1', '-subj', '/CN=hoist test CA');
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', file('server.key'), '-out', file('server.csr'), '-subj', '/CN=127.0.0.1');
  writeFileSync(file('san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  openssl('x509', '-req', '-in', file('server.csr'), '-CA', file('ca.pem'), '-CAkey', file('ca.key'), '-CAcreateserial', '-out', file('server.pem'), '-days', '1', '-extfile', file('san.ext'));
  return { ca: file('ca.pem'), cert: file('server.pem'), key: file('server.key') };
}

export async function startRegistry(options: RegistryOptions = {}): Promise<Registry> {
  const dir = mkdtempSync(join(tmpdir(), 'hoist-registry-'));
  const port = await freePort();
  const config = join(dir, 'config.yml');
  const auth: string[] = [];
  if (options.basicAuth) {
    const htpasswd = join(dir, 'htpasswd');
    execFileSync('htpasswd', ['-Bbc', htpasswd, options.basicAuth.username, options.basicAuth.password], { stdio: 'ignore' });
    auth.push('auth:', '  htpasswd:', '    realm: hoist-test', `    path: ${htpasswd}`);
  }
  const token = options.tokenAuth;
  if (token) {
    auth.push('auth:', '  token:', `    realm: ${token.realm}`, `    service: ${token.service}`, `    issuer: ${token.issuer}`, `    rootcertbundle: ${token.certFile}`);
  }
  const certificates = options.tls ? makeCertificates(dir) : undefined;
  const tls = certificates ? ['  tls:', `    certificate: ${certificates.cert}`, `    key: ${certificates.key}`] : [];
  writeFileSync(config, [
    'version: 0.1', 'log:', '  level: error', 'storage:', '  filesystem:', `    rootdirectory: ${dir}/data`, '  delete:', '    enabled: true',
    'http:', `  addr: 127.0.0.1:${port}`, ...tls, ...auth, '',
  ].join('\n'));
  // Its log goes to a file, not a pipe: a caller blocked in spawnSync (the benchmark) would not
  // drain a pipe, and the registry would stop when the pipe filled.
  const log = join(dir, 'registry.log');
  const logFd = openSync(log, 'w');
  const child: ChildProcess = spawn('docker-registry', ['serve', config], { stdio: ['ignore', 'ignore', logFd] });
  closeSync(logFd);
  const stderr = (): string => readFileSync(log, 'utf8');
  const host = `127.0.0.1:${port}`;
  const answering = async (): Promise<boolean> => (certificates
    ? spawnSync('curl', ['-s', '-o', '/dev/null', '--cacert', certificates.ca, `https://${host}/v2/`]).status === 0
    : fetch(`http://${host}/v2/`).then((response) => response.ok || response.status === 401, () => false));
  await waitUntil(async () => child.exitCode !== null || await answering(), `docker-registry answering on ${host}`).catch((error: Error) => {
    child.kill();
    throw new Error(`${error.message}: ${stderr()}`);
  });
  if (child.exitCode !== null) throw new Error(`docker-registry exited: ${stderr()}`);
  return {
    host,
    ...(certificates ? { ca: certificates.ca } : {}),
    stop: async () => {
      if (child.exitCode === null) {
        child.kill();
        await new Promise((resolve) => child.once('exit', resolve));
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
