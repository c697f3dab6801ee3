// Registry credentials stay with the registry's origin (scheme, host, port), redirects end, and a
// registry that never answers fails in a bounded time. The registries, CDNs, token services and
// recorders here are small HTTP servers in this process on loopback (so hoist runs with hoistAsync);
// each records what reached it, Authorization headers included.
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { hoistAsync, removeTree, writeContext, type Run } from '../support/hoist.ts';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'hoist-origin-test-'));
});
afterAll(() => removeTree(dir));

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const MANIFEST_PATH = '/v2/lib/x/manifests/1';
const user = { username: 'ci', password: 'origin-secret' };
const BASIC = `Basic ${Buffer.from(`${user.username}:${user.password}`).toString('base64')}`;

const configBytes = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [] } }));
const configDigest = `sha256:${createHash('sha256').update(configBytes).digest('hex')}`;
const BLOB_PATH = `/v2/lib/x/blobs/${configDigest}`;
const manifestBytes = Buffer.from(JSON.stringify({
  schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: OCI_CONFIG, digest: configDigest, size: configBytes.length }, layers: [],
}));

interface Seen {
  method: string;
  url: string;
  authorization: string | undefined;
}

interface TestServer {
  host: string;
  port: number;
  /** Every request, with its Authorization header. */
  seen: Seen[];
  stop(): Promise<void>;
}

type Handler = (request: IncomingMessage, response: ServerResponse) => void;

/** An HTTP server on 127.0.0.1 (on `port`, or a free one) that records every request before `handle` answers it. */
async function serve(handle: Handler, port = 0): Promise<TestServer> {
  const seen: Seen[] = [];
  const server: Server = createServer((request, response) => {
    seen.push({ method: request.method ?? '', url: request.url ?? '', authorization: request.headers.authorization });
    request.resume();
    handle(request, response);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  const bound = (server.address() as { port: number }).port;
  return {
    host: `127.0.0.1:${bound}`, port: bound, seen,
    stop: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

const send = (response: ServerResponse, status: number, headers: Record<string, string | number> = {}, body: Buffer | string = ''): void => {
  response.writeHead(status, { 'content-length': Buffer.byteLength(body), ...headers }).end(body);
};

/**
 * A registry that wants `authorized` (else a 401 with `challenge`), serves lib/x:1's manifest, and
 * answers its config blob with a redirect to `blobAt` (a URL).
 */
function registry(authorized: (authorization: string | undefined) => boolean, challenge: string, blobAt: () => string): Handler {
  return (request, response) => {
    if (!authorized(request.headers.authorization)) return send(response, 401, { 'www-authenticate': challenge });
    if (request.url === MANIFEST_PATH) return send(response, 200, { 'content-type': OCI_MANIFEST }, manifestBytes);
    if (request.url === BLOB_PATH) return send(response, 307, { location: blobAt() });
    send(response, 404);
  };
}

const serveBlob: Handler = (_request, response) => send(response, 200, { 'content-type': OCI_CONFIG }, configBytes);

/** The credentials file that gives `host` the test's user. */
function credentialsFor(name: string, host: string): Record<string, string> {
  const file = join(dir, `${name}-auth.json`);
  writeFileSync(file, JSON.stringify({ auths: { [host]: { auth: Buffer.from(`${user.username}:${user.password}`).toString('base64') } } }));
  return { REGISTRY_AUTH_FILE: file };
}

const pull = (name: string, host: string, env: Record<string, string>): Promise<Run> =>
  hoistAsync(['pull', '--root', join(dir, `${name}-store`), '--platform', 'linux/amd64', `${host}/lib/x:1`], { env });

/** Exit 1 with one line, the last, ending with `text`, and no stack. */
function expectRefused(run: Run, text: string): void {
  expect(run.code, run.stderr).toBe(1);
  const lines = run.stderr.trimEnd().split('\n');
  expect(lines.at(-1)).toMatch(new RegExp(`^hoist: .*${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`));
  expect(lines.filter((line) => /^\s+at /.test(line))).toEqual([]);
}

const authorized = (servers: TestServer[]): Seen[] => servers.flatMap((server) => server.seen).filter((seen) => seen.authorization !== undefined);

/**
 * Two servers on ports P and Q where `http://127.0.0.1:P` is a prefix of `http://127.0.0.1:Q` (5000
 * and 50001): a same-host lookalike that only an origin comparison tells apart.
 */
async function serveLookalikes(registryHandler: Handler, lookalikeHandler: Handler): Promise<{ front: TestServer; lookalike: TestServer }> {
  for (let tries = 0; tries < 200; tries++) {
    const port = 1024 + Math.floor(Math.random() * (6553 - 1024));
    const [front, lookalike] = await Promise.allSettled([serve(registryHandler, port), serve(lookalikeHandler, port * 10 + Math.floor(Math.random() * 10))]);
    if (front.status === 'fulfilled' && lookalike.status === 'fulfilled') return { front: front.value, lookalike: lookalike.value };
    // A port in use (or over 65535): try another pair.
    for (const started of [front, lookalike]) if (started.status === 'fulfilled') await started.value.stop();
  }
  throw new Error('found no free pair of lookalike ports');
}

describe('registry credentials are bound to the registry origin', () => {
  const challenges: [string, (realm: string) => string][] = [
    ['a Bearer realm on a third host', (realm) => `Bearer realm="${realm}",service="cdn"`],
    ['Basic', () => 'Basic realm="cdn"'],
  ];
  test.each(challenges)('a blob redirected to another port that answers 401 with %s: no credentials leave, and the error names that origin', async (name, challenge) => {
    const realm = await serve((_request, response) => send(response, 200, { 'content-type': 'application/json' }, JSON.stringify({ token: 'stolen' })));
    const cdn = await serve((_request, response) => send(response, 401, { 'www-authenticate': challenge(`http://${realm.host}/token`) }));
    const front = await serve(registry((authorization) => authorization === BASIC, 'Basic realm="registry"', () => `http://${cdn.host}/blobs/config`));
    try {
      const place = `cdn-401-${name.replace(/\W+/g, '-')}`;
      const run = await pull(place, front.host, credentialsFor(place, front.host));
      // The registry itself got the credentials; neither the CDN nor the realm it names saw any.
      expect(front.seen.some((seen) => seen.url === MANIFEST_PATH && seen.authorization === BASIC)).toBe(true);
      expect(authorized([cdn, realm])).toEqual([]);
      expect(realm.seen).toEqual([]);
      expect(cdn.seen).toHaveLength(1);
      expectRefused(run, `GET http://${cdn.host}/blobs/config: 401 from http://${cdn.host}, where ${front.host} redirected the request: hoist sends credentials only to http://${front.host}`);
    } finally {
      await Promise.all([front.stop(), cdn.stop(), realm.stop()]);
    }
  });

  test('a same-host lookalike (port P and port P·10+n) gets no credentials', async () => {
    const { front, lookalike } = await serveLookalikes(registry((authorization) => authorization === BASIC, 'Basic realm="registry"', () => `http://${lookalike.host}${BLOB_PATH}`), serveBlob);
    try {
      expect(`http://${lookalike.host}`.startsWith(`http://${front.host}`)).toBe(true);
      const run = await pull('lookalike', front.host, credentialsFor('lookalike', front.host));
      expect(run.code, run.stderr).toBe(0);
      expect(front.seen.some((seen) => seen.url === MANIFEST_PATH && seen.authorization === BASIC)).toBe(true);
      expect(lookalike.seen.map((seen) => seen.url)).toEqual([BLOB_PATH]);
      expect(authorized([lookalike])).toEqual([]);
    } finally {
      await Promise.all([front.stop(), lookalike.stop()]);
    }
  });

  test("the registry's own 401 names a realm on another host: the realm gets the credentials (as Docker and containerd send them), a CDN not even the token", async () => {
    const issuer = await serve((request, response) => {
      if (request.headers.authorization !== BASIC) return send(response, 401);
      send(response, 200, { 'content-type': 'application/json' }, JSON.stringify({ token: 'registry-token', expires_in: 300 }));
    });
    const cdn = await serve(serveBlob);
    const front = await serve(registry((authorization) => authorization === 'Bearer registry-token',
      `Bearer realm="http://${issuer.host}/token",service="registry"`, () => `http://${cdn.host}${BLOB_PATH}`));
    try {
      const run = await pull('realm', front.host, credentialsFor('realm', front.host));
      expect(run.code, run.stderr).toBe(0);
      expect(issuer.seen.length).toBeGreaterThan(0);
      expect(issuer.seen.every((seen) => seen.authorization === BASIC && seen.url.includes('scope=repository%3Alib%2Fx%3Apull'))).toBe(true);
      expect(front.seen.some((seen) => seen.url === MANIFEST_PATH && seen.authorization === 'Bearer registry-token')).toBe(true);
      expect(cdn.seen.map((seen) => seen.url)).toEqual([BLOB_PATH]);
      expect(authorized([cdn])).toEqual([]);
    } finally {
      await Promise.all([front.stop(), cdn.stop(), issuer.stop()]);
    }
  });
});

describe('redirects end after 10, as Go\'s http.Client', () => {
  /** A server that redirects every request to itself, to a new URL each time. */
  const loop = async (): Promise<TestServer> => {
    let count = 0;
    const looping = await serve((_request, response) => send(response, 302, { location: `http://${looping.host}/loop?n=${++count}` }));
    return looping;
  };

  test('a registry redirecting into a loop on another host: the 10th redirect ends the pull, naming where it went', async () => {
    const looping = await loop();
    const front = await serve((request, response) => {
      if (request.url === MANIFEST_PATH) return send(response, 307, { location: `http://${looping.host}/loop?n=0` });
      send(response, 404);
    });
    try {
      const run = await pull('loop', front.host, {});
      expectRefused(run, `GET http://${looping.host}/loop?n=8: stopped after 10 redirects (the last to http://${looping.host})`);
      // The registry's redirect and 9 of the loop's: 10 requests in all, as Go makes.
      expect(front.seen.filter((seen) => seen.url === MANIFEST_PATH)).toHaveLength(1);
      expect(looping.seen).toHaveLength(9);
    } finally {
      await Promise.all([front.stop(), looping.stop()]);
    }
  });

  test("ADD's download follows the same limit", async () => {
    const looping = await loop();
    try {
      const context = writeContext(dir, 'add-loop', { Dockerfile: `FROM scratch\nADD http://${looping.host}/loop?n=0 /f\n` });
      const run = await hoistAsync(['build', '--root', join(dir, 'add-loop-store'), context]);
      expect(looping.seen, run.stderr).toHaveLength(10);
      expectRefused(run, `downloading http://${looping.host}/loop?n=0: stopped after 10 redirects (the last to http://${looping.host})`);
    } finally {
      await looping.stop();
    }
  });
});

describe('a registry that accepts connections and never answers', () => {
  test('fails once the waits reach twice HOIST_REGISTRY_TIMEOUT, naming the host, with no more attempts than that allows', async () => {
    // What each connection sent first: a TLS ClientHello (0x16) or a plain HTTP request.
    const firstBytes: Buffer[] = [];
    const sockets = new Set<Socket>();
    const silent = createTcpServer((socket) => {
      sockets.add(socket);
      socket.once('data', (chunk: Buffer) => firstBytes.push(chunk));
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const host = `127.0.0.1:${(silent.address() as { port: number }).port}`;
    try {
      const run = await pull('silent', host, { HOIST_REGISTRY_TIMEOUT: '1' });
      // A budget of 2 s: HTTPS waits 1 s to connect, plain HTTP 1 s for an answer, and another
      // wait would pass it. The code before this budget tried plain HTTP 4 times (5 attempts).
      const tls = firstBytes.filter((chunk) => chunk[0] === 0x16);
      const plain = firstBytes.filter((chunk) => chunk.toString('latin1').startsWith(`GET ${MANIFEST_PATH} `));
      expect([tls.length, plain.length, firstBytes.length]).toEqual([1, 1, 2]);
      expectRefused(run, `GET http://${host}${MANIFEST_PATH}: no answer within 1 s (2 attempts)`);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});
