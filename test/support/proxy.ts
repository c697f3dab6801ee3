// An HTTP proxy in front of a test registry that misbehaves on purpose: it drops connections and
// answers 500 on a fixed pattern of requests, or corrupts blob bodies, so that retries and digest
// checks meet real failures.
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import { Transform } from 'node:stream';

export interface FaultyProxy {
  host: string;
  /** How many requests were dropped or answered 500. */
  faults: number;
  requests: number;
  /** `METHOD path` of every request, in order. */
  log: string[];
  stop(): Promise<void>;
}

export interface Faults {
  /** Every Nth request has its connection dropped before any answer. */
  dropEvery?: number;
  /** Every Nth request (counted apart) gets a 500. */
  failEvery?: number;
  /** Flip a byte in every blob body sent to clients. */
  corruptBlobs?: boolean;
  /** Demand this user (Basic) before forwarding anything, as an authenticating front would. */
  requireBasic?: { username: string; password: string };
  /** Answer blob GETs with a redirect to this host (as registries do to a CDN). */
  redirectBlobsTo?: string;
}

export async function startFaultyProxy(upstream: string, faults: Faults): Promise<FaultyProxy> {
  const state = { faults: 0, requests: 0 };
  const log: string[] = [];
  const server = createServer((incoming: IncomingMessage, outgoing: ServerResponse) => {
    const count = ++state.requests;
    log.push(`${incoming.method} ${incoming.url}${incoming.headers.authorization ? ' [authorization]' : ''}`);
    if (faults.requireBasic) {
      const expected = `Basic ${Buffer.from(`${faults.requireBasic.username}:${faults.requireBasic.password}`).toString('base64')}`;
      if (incoming.headers.authorization !== expected) {
        incoming.resume();
        outgoing.writeHead(401, { 'www-authenticate': 'Basic realm="hoist-test-front"' }).end();
        return;
      }
    }
    if (faults.redirectBlobsTo && incoming.method === 'GET' && /\/blobs\/sha256:/.test(incoming.url ?? '')) {
      incoming.resume();
      outgoing.writeHead(307, { location: `http://${faults.redirectBlobsTo}${incoming.url}` }).end();
      return;
    }
    if (faults.dropEvery && count % faults.dropEvery === 0) {
      state.faults++;
      incoming.socket.destroy();
      return;
    }
    if (faults.failEvery && (count + 1) % faults.failEvery === 0) {
      state.faults++;
      incoming.resume();
      outgoing.writeHead(500, { 'content-type': 'text/plain' }).end('injected failure');
      return;
    }
    const [host, port] = upstream.split(':');
    const { authorization: _authorization, ...headersToForward } = incoming.headers;
    const forwarded = request({ host, port: Number(port), method: incoming.method, path: incoming.url, headers: { ...headersToForward, host: upstream } }, (answer) => {
      const headers = { ...answer.headers };
      // Redirects and upload locations must come back through the proxy.
      if (typeof headers.location === 'string') headers.location = headers.location.replace(upstream, `127.0.0.1:${(server.address() as { port: number }).port}`);
      outgoing.writeHead(answer.statusCode ?? 502, headers);
      const corrupt = faults.corruptBlobs && incoming.method === 'GET' && /\/blobs\/sha256:/.test(incoming.url ?? '');
      if (!corrupt) return answer.pipe(outgoing);
      let first = true;
      answer.pipe(new Transform({
        transform(chunk: Buffer, _encoding, done) {
          if (first && chunk.length > 0) {
            chunk = Buffer.from(chunk);
            chunk[0] = chunk[0]! ^ 0xff;
            first = false;
          }
          done(null, chunk);
        },
      })).pipe(outgoing);
    });
    forwarded.on('error', () => outgoing.destroy());
    incoming.pipe(forwarded);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    host: `127.0.0.1:${port}`,
    log,
    get faults() {
      return state.faults;
    },
    get requests() {
      return state.requests;
    },
    stop: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
