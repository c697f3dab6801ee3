// What a hostile or broken registry, OCI layout or build cache can send, against the real CLI: each
// is refused with one line that names where it came from, and nothing outside the store is touched.
// The registries here are small HTTP servers in this process (so hoist runs with hoistAsync).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { hoistAsync, removeTree, writeContext, type Run } from '../support/hoist.ts';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'hoist-hostile-test-'));
});
afterAll(() => removeTree(dir));

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const CACHE_CONFIG = 'application/vnd.hoist.build-cache.config.v1+json';
/** From STORE/sources/ it reaches CASE/victim, from STORE/blobs/sha256/ CASE/x/victim: both exist. */
const TRAVERSAL = 'sha256:../../../../victim';
const HEX = 'ab'.repeat(32);

const sha256 = (bytes: Buffer | string): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

const configBytes = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [] } }));
const config = { mediaType: OCI_CONFIG, digest: sha256(configBytes), size: configBytes.length };
const manifest = (fields: object = {}): object => ({ schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers: [], ...fields });
const layer = (digest: string): object => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest, size: 100 });

type Route = (request: IncomingMessage, response: ServerResponse) => void;

/** An answer of `body` (a JSON value, or text) with its type. */
const answer = (body: unknown, type = OCI_MANIFEST, status = 200): Route => (_request, response) => {
  const bytes = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  response.writeHead(status, { 'content-type': type, 'content-length': bytes.length }).end(bytes);
};

interface TestServer {
  host: string;
  /** `METHOD path` of every request, in order (a silent server's: `connection` for each). */
  requests: string[];
  stop(): Promise<void>;
}

/** A registry of crafted answers by `METHOD path` or path; anything else is a JSON 404. */
async function fakeRegistry(routes: Record<string, Route>): Promise<TestServer> {
  const requests: string[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((request, response) => {
    requests.push(`${request.method} ${request.url}`);
    const route = routes[`${request.method} ${request.url}`] ?? routes[request.url ?? ''];
    if (route) route(request, response);
    else answer({ errors: [{ code: 'NOT_FOUND', message: 'no such thing' }] }, 'application/json', 404)(request, response);
  });
  return listening(server, sockets, requests);
}

/** A server that accepts connections and never says a word. */
async function silentServer(): Promise<TestServer> {
  const sockets = new Set<Socket>();
  const requests: string[] = [];
  return listening(createTcpServer(() => requests.push('connection')), sockets, requests);
}

async function listening(server: Server, sockets: Set<Socket>, requests: string[]): Promise<TestServer> {
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    host: `127.0.0.1:${port}`,
    requests,
    stop: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** A case's directory, with victim files where traversal digests would land, and its store. */
function makeCase(name: string): { base: string; root: string; before: Map<string, string> } {
  const base = join(dir, name);
  mkdirSync(join(base, 'x', 'y'), { recursive: true });
  writeFileSync(join(base, 'victim'), 'victim\n');
  writeFileSync(join(base, 'x', 'victim'), 'victim\n');
  const root = join(base, 'x', 'y', 'store');
  return { base, root, before: outsideStore(base, root) };
}

/** Every path under `base` but in the store, with the content of the files. */
function outsideStore(base: string, root: string): Map<string, string> {
  const found = new Map<string, string>();
  for (const entry of readdirSync(base, { recursive: true, withFileTypes: true })) {
    const path = join(entry.parentPath, entry.name);
    if (path === root || path.startsWith(`${root}/`)) continue;
    found.set(relative(base, path), entry.isFile() ? readFileSync(path, 'utf8') : entry.isDirectory() ? 'dir' : 'other');
  }
  return found;
}

/** Nothing outside the store changed, and exit 1 with one line (the last) saying `text`, no stack. */
function expectRefused(run: Run, text: string | RegExp, place?: ReturnType<typeof makeCase>): string {
  if (place) expect(outsideStore(place.base, place.root)).toEqual(place.before);
  expect(run.code, run.stderr).toBe(1);
  const lines = run.stderr.trimEnd().split('\n');
  const last = lines.at(-1)!;
  if (typeof text === 'string') expect(last).toContain(text);
  else expect(last).toMatch(text);
  expect(last.length).toBeLessThan(400);
  expect(lines.filter((line) => /^\s+at /.test(line))).toEqual([]);
  return last;
}

/** `hoist pull` of lib/x:1 from a registry answering `routes`. */
async function pullFrom(name: string, routes: Record<string, Route>, env: Record<string, string> = {}): Promise<{ run: Run; place: ReturnType<typeof makeCase>; server: TestServer }> {
  const place = makeCase(name);
  const server = await fakeRegistry(routes);
  try {
    const run = await hoistAsync(['pull', '--root', place.root, '--platform', 'linux/amd64', `${server.host}/lib/x:1`], { env });
    return { run, place, server };
  } finally {
    await server.stop();
  }
}

const MANIFEST_PATH = '/v2/lib/x/manifests/1';

describe('a hostile registry', () => {
  const refusedManifests: [string, unknown, string, string][] = [
    ['a traversal digest in the config', manifest({ config: { ...config, digest: TRAVERSAL } }), OCI_MANIFEST,
      `manifest for lib/x:1, config: "${TRAVERSAL}" is not a valid digest`],
    ['a traversal digest in a layer', manifest({ layers: [layer(TRAVERSAL)] }), OCI_MANIFEST, `manifest for lib/x:1, layer 1: "${TRAVERSAL}" is not a valid digest`],
    ['a traversal digest in an index', { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ ...layer(TRAVERSAL), mediaType: OCI_MANIFEST, platform: { os: 'linux', architecture: 'amd64' } }] },
      OCI_INDEX, `manifest for lib/x:1, manifest 1: "${TRAVERSAL}" is not a valid digest`],
    ['an uppercase digest', manifest({ layers: [layer(`sha256:${HEX.toUpperCase()}`)] }), OCI_MANIFEST, 'layer 1: "sha256:ABAB'],
    ['a short digest', manifest({ layers: [layer('sha256:abc')] }), OCI_MANIFEST, 'layer 1: "sha256:abc" is not a valid digest'],
    ['a sha512 digest', manifest({ layers: [layer(`sha512:${HEX}${HEX}`)] }), OCI_MANIFEST, 'is a sha512 digest, which hoist does not support (only sha256)'],
    ['a huge digest with line breaks', manifest({ config: { ...config, digest: `sha256:${'../'.repeat(5000)}victim\n    at evil (x.js:1:1)` } }), OCI_MANIFEST,
      'config: "sha256:../../'],
    ['a negative size', manifest({ layers: [{ ...layer(`sha256:${HEX}`), size: -1 }] }), OCI_MANIFEST, 'layer 1: its size is -1, not a non-negative integer'],
    ['a mediaType that is not a string', manifest({ layers: [{ ...layer(`sha256:${HEX}`), mediaType: 7 }] }), OCI_MANIFEST, 'layer 1: its mediaType is 7, not a string'],
    ['a manifest that is not JSON', '<html><body>a captive portal</body></html>', 'text/html', 'manifest for lib/x:1 is not valid JSON'],
    ['layers: null', manifest({ layers: null }), OCI_MANIFEST, 'manifest for lib/x:1 is not an image manifest (it has no layers list)'],
    ['no config', { schemaVersion: 2, mediaType: OCI_MANIFEST, layers: [] }, OCI_MANIFEST, 'manifest for lib/x:1, config is missing, not a descriptor'],
    ['an index with manifests: null', { schemaVersion: 2, mediaType: OCI_INDEX, manifests: null }, OCI_INDEX, 'manifest for lib/x:1 is not an image index (it has no manifests list)'],
  ];
  test.each(refusedManifests)('%s is refused in one line, and nothing outside the store is written', async (name, body, type, message) => {
    const { run, place, server } = await pullFrom(name.replace(/\W+/g, '-'), { [MANIFEST_PATH]: answer(body, type), [`/v2/lib/x/blobs/${config.digest}`]: answer(configBytes.toString(), OCI_CONFIG) });
    const line = expectRefused(run, `hoist: registry ${server.host}: manifest for lib/x:1`, place);
    expect(line).toContain(message);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    // Nothing was asked for with the bad digest.
    expect(server.requests.filter((request) => !request.endsWith('/manifests/1'))).toEqual([]);
  });

  test('an HTML 404 page is summarised by its title, not dumped', async () => {
    const page = `<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n<body>${'<p>lost</p>\n'.repeat(20_000)}</body></html>`;
    const { run, server } = await pullFrom('html-404', { [MANIFEST_PATH]: answer(page, 'text/html', 404) });
    expectRefused(run, `hoist: image not found: ${server.host}/lib/x:1 (the registry said: an HTML page ("404 Not Found"))`);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
  });

  test("a registry's error text with line breaks and a fake stack stays on one line", async () => {
    const errors = { errors: [{ code: 'DENIED', message: `no\n    at evil (x.js:1:1)\n${'z'.repeat(10_000)}` }] };
    const { run } = await pullFrom('error-text', { [MANIFEST_PATH]: answer(errors, 'application/json', 403) });
    expectRefused(run, '403 DENIED: no at evil (x.js:1:1) zzz');
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
  });

  test('--cache-from: a traversal digest in a build cache config is refused before anything is fetched', async () => {
    const record = { layer: { ...layer(TRAVERSAL), diffId: `sha256:${HEX}` }, created: '2024-01-01T00:00:00Z', inputs: { parent: '', step: {}, env: {}, args: {} } };
    const cacheConfig = Buffer.from(JSON.stringify({ records: { [HEX]: record }, steps: {}, mounts: {} }));
    const cacheManifest = manifest({ config: { mediaType: CACHE_CONFIG, digest: sha256(cacheConfig), size: cacheConfig.length } });
    const place = makeCase('cache-from-registry');
    const server = await fakeRegistry({ '/v2/lib/cache/manifests/1': answer(cacheManifest), [`/v2/lib/cache/blobs/${sha256(cacheConfig)}`]: answer(cacheConfig.toString(), CACHE_CONFIG) });
    try {
      const context = writeContext(place.base, 'context', { Dockerfile: 'FROM scratch\nCOPY f /f\n', f: 'f' });
      place.before = outsideStore(place.base, place.root);
      const run = await hoistAsync(['build', '--root', place.root, '--cache-from', `type=registry,ref=${server.host}/lib/cache:1`, context]);
      expectRefused(run, `hoist: build cache ${server.host}/lib/cache:1, record ${HEX}, layer: "${TRAVERSAL}" is not a valid digest`, place);
      expect(server.requests.some((request) => request.includes('victim'))).toBe(false);
    } finally {
      await server.stop();
    }
  });
});

describe('a hostile OCI layout', () => {
  /** A layout directory whose index.json lists `manifests`, with `blobs` in it. */
  function layoutDir(base: string, manifests: unknown[], blobs: Buffer[] = []): string {
    const layout = join(base, 'layout');
    mkdirSync(join(layout, 'blobs', 'sha256'), { recursive: true });
    writeFileSync(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    writeFileSync(join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests }));
    for (const blob of blobs) writeFileSync(join(layout, 'blobs', 'sha256', sha256(blob).slice(7)), blob);
    return layout;
  }
  const traversalIndex = [{ mediaType: OCI_MANIFEST, digest: TRAVERSAL, size: 100, annotations: { 'org.opencontainers.image.ref.name': 'latest' } }];

  test('hoist load: a traversal digest in index.json', async () => {
    const place = makeCase('load-index');
    const layout = layoutDir(place.base, traversalIndex);
    place.before = outsideStore(place.base, place.root);
    const run = await hoistAsync(['load', '--root', place.root, '-t', 'x:1', layout]);
    expectRefused(run, `hoist: ${layout}: index.json, manifest 1: "${TRAVERSAL}" is not a valid digest`, place);
  });

  test("hoist load: a traversal digest in a manifest's layers", async () => {
    const place = makeCase('load-manifest');
    const bad = Buffer.from(JSON.stringify(manifest({ layers: [layer(TRAVERSAL)] })));
    const layout = layoutDir(place.base, [{ mediaType: OCI_MANIFEST, digest: sha256(bad), size: bad.length }], [bad, configBytes]);
    place.before = outsideStore(place.base, place.root);
    const run = await hoistAsync(['load', '--root', place.root, '-t', 'x:1', layout]);
    expectRefused(run, `hoist: manifest ${sha256(bad)}, layer 1: "${TRAVERSAL}" is not a valid digest`, place);
  });

  test('hoist load: a tarball whose index.json has a sha512 digest', async () => {
    const place = makeCase('load-tar');
    const layout = layoutDir(place.base, [{ mediaType: OCI_MANIFEST, digest: `sha512:${HEX}${HEX}`, size: 100 }]);
    const tarball = join(place.base, 'layout.tar');
    execFileSync('tar', ['-cf', tarball, '-C', layout, '.']);
    place.before = outsideStore(place.base, place.root);
    const run = await hoistAsync(['load', '--root', place.root, '-t', 'x:1', tarball]);
    expectRefused(run, `hoist: ${tarball}: index.json, manifest 1: "sha512:${HEX}`, place);
    expect(run.stderr).toContain('is a sha512 digest, which hoist does not support');
  });

  test('--build-context NAME=oci-layout:// with a traversal digest in index.json', async () => {
    const place = makeCase('from-layout');
    const layout = layoutDir(place.base, traversalIndex);
    const context = writeContext(place.base, 'context', { Dockerfile: 'FROM base\n' });
    place.before = outsideStore(place.base, place.root);
    const run = await hoistAsync(['build', '--root', place.root, '--build-context', `base=oci-layout://${layout}`, context]);
    expectRefused(run, `${layout}: index.json, manifest 1: "${TRAVERSAL}" is not a valid digest`, place);
  });

  test('--cache-from type=local with a traversal digest in index.json', async () => {
    const place = makeCase('cache-from-local');
    const layout = layoutDir(place.base, traversalIndex);
    const context = writeContext(place.base, 'context', { Dockerfile: 'FROM scratch\nCOPY f /f\n', f: 'f' });
    place.before = outsideStore(place.base, place.root);
    const run = await hoistAsync(['build', '--root', place.root, '--cache-from', `type=local,src=${layout}`, context]);
    expectRefused(run, `hoist: build cache ${layout}: index.json, manifest 1: "${TRAVERSAL}" is not a valid digest`, place);
  });
});

describe.concurrent('a registry that stops answering (HOIST_REGISTRY_TIMEOUT=1)', () => {
  const env = { HOIST_REGISTRY_TIMEOUT: '1' };

  test('one that accepts the connection and never answers fails FROM in seconds, naming the host', async () => {
    const place = makeCase('silent');
    const server = await silentServer();
    try {
      const context = writeContext(place.base, 'context', { Dockerfile: `FROM ${server.host}/lib/x:1\n` });
      const run = await hoistAsync(['build', '--root', place.root, context], { env });
      expectRefused(run, new RegExp(`GET http://${server.host}/v2/lib/x/manifests/1: no answer within 1 s \\(\\d attempts\\)$`));
      // In seconds, by count rather than by the clock: the attempts the message names (the first
      // over HTTPS), each one connection given up after the 1 s timeout, and nothing more.
      const attempts = Number(/\((\d) attempts\)$/m.exec(run.stderr)![1]);
      expect(server.requests).toHaveLength(attempts);
    } finally {
      await server.stop();
    }
  });

  test('a blob body that stops is fetched again, then fails with a clear error', async () => {
    const blobPath = `/v2/lib/x/blobs/${config.digest}`;
    const { run, server } = await pullFrom('stalled', {
      [MANIFEST_PATH]: answer(manifest()),
      [blobPath]: (_request, response) => {
        response.writeHead(200, { 'content-type': OCI_CONFIG, 'content-length': configBytes.length });
        response.write(configBytes.subarray(0, 10));
      },
    }, env);
    expectRefused(run, `hoist: GET http://${server.host}${blobPath}: the answer stopped coming for 1 s (5 attempts)`);
    expect(server.requests.filter((request) => request === `GET ${blobPath}`)).toHaveLength(5);
  });

  test('a blob that comes slowly but steadily for longer than the idle timeout arrives whole', async () => {
    const padded = Buffer.concat([configBytes, Buffer.alloc(2000, ' ')]);
    const slow = { ...config, digest: sha256(padded), size: padded.length };
    const { run } = await pullFrom('slow', {
      [MANIFEST_PATH]: answer(manifest({ config: slow })),
      [`/v2/lib/x/blobs/${slow.digest}`]: (_request, response) => {
        response.writeHead(200, { 'content-type': OCI_CONFIG, 'content-length': padded.length });
        let sent = 0;
        const timer = setInterval(() => {
          response.write(padded.subarray(sent, sent + 100));
          sent += 100;
          if (sent >= padded.length) {
            clearInterval(timer);
            response.end();
          }
        }, 120);
      },
    }, env);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^sha256:[a-f0-9]{64}\n$/);
  });
});
