// ADD <url> reaches the network as pulls do: a server whose certificate only --tls-ca vouches for
// is trusted with it and refused without it.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { fetchUrl } from '../../builder/archive.ts';
import { hoistAsync, removeTree } from '../support/hoist.ts';

const CONTENT = 'served over TLS\n';
let dir: string;
let server: Server;
let url: string;

/** A CA and a certificate for 127.0.0.1 signed by it, in `dir`. */
function makeCertificates(): { ca: string; cert: string; key: string } {
  const file = (name: string): string => join(dir, name);
  const openssl = (...args: string[]): void => void execFileSync('openssl', args, { stdio: 'ignore' });
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', file('ca.key'), '-out', file('ca.pem'), '-days', '1', '-subj', '/CN=hoist test CA');
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', file('server.key'), '-out', file('server.csr'), '-subj', '/CN=127.0.0.1');
  writeFileSync(file('san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  openssl('x509', '-req', '-in', file('server.csr'), '-CA', file('ca.pem'), '-CAkey', file('ca.key'), '-CAcreateserial', '-out', file('server.pem'), '-days', '1', '-extfile', file('san.ext'));
  return { ca: file('ca.pem'), cert: file('server.pem'), key: file('server.key') };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hoist-add-url-'));
  const { cert, key } = makeCertificates();
  server = createServer({ cert: readFileSync(cert), key: readFileSync(key) }, (_request, response) => response.end(CONTENT));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/file`;
  writeFileSync(join(dir, 'Dockerfile'), `FROM scratch\nADD ${url} /f\n`);
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  removeTree(dir);
});

/** `hoist build` of the Dockerfile into a local directory; the server answers from this process, so the build must not block it. */
const build = (name: string, flags: string[]) => hoistAsync(
  ['build', '--root', join(dir, 'store'), ...flags, '--output', `type=local,dest=${join(dir, name)}`, '-f', join(dir, 'Dockerfile'), dir],
  // Straight to the loopback server, and no CA but the one given.
  { env: { NO_PROXY: '127.0.0.1', no_proxy: '127.0.0.1', SSL_CERT_FILE: '' } },
);

test('fetchUrl downloads with the registry\'s CAs, and without them refuses the certificate', async () => {
  const downloads = mkdtempSync(join(dir, 'downloads-'));
  expect(readFileSync(await fetchUrl(url, downloads, undefined, { caFile: join(dir, 'ca.pem') }), 'utf8')).toBe(CONTENT);
  await expect(fetchUrl(url, downloads)).rejects.toThrow(`downloading ${url}: unable to verify the first certificate`);
});

test('ADD of an HTTPS URL trusts the CA of --tls-ca', async () => {
  const run = await build('trusted', ['--tls-ca', join(dir, 'ca.pem')]);
  expect(run.stderr).not.toMatch(/error|certificate/i);
  expect(run.code).toBe(0);
  expect(readFileSync(join(dir, 'trusted', 'f'), 'utf8')).toBe(CONTENT);
});

test('ADD of an HTTPS URL whose certificate nothing vouches for fails with a certificate error', async () => {
  const run = await build('untrusted', []);
  expect(run.code).toBe(1);
  expect(run.stderr).toMatch(new RegExp(`downloading ${url.replace(/[.]/g, '\\.')}: .*certificate`));
});
