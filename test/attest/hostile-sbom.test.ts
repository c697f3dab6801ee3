// An SBOM of a hostile base image never fails the build and stays within a fixed memory and time
// budget: each image is made here, layer by layer, as a base a registry could serve, and built with
// `hoist build --sbom=true` into an OCI tarball. What the SBOM could not read is named in a
// warning; the good packages beside it are still listed. For the images that once exhausted hoist,
// /usr/bin/time measures the peak RSS of that one hoist process, and the test's own timeout is
// the guard against a run that never ends.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import { Store, writeImage, writeLayer, type LayerEntry } from '../../layers/index.ts';
import { goBuildInfo } from '../support/go-binary.ts';
import { removeTree, writeContext, type Run } from '../support/hoist.ts';
import { repoRoot } from '../support/paths.ts';

let dir: string;
let root: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'hoist-hostile-sbom-'));
  root = join(dir, 'store');
});
afterAll(() => removeTree(dir));

/** The hoist being run, if any: a build still running when its test timed out is stopped, all its processes with it. */
let running: ChildProcess | undefined;
afterEach(() => {
  if (running?.exitCode === null && running.signalCode === null) process.kill(-running.pid!, 'SIGKILL');
  running = undefined;
});

/** Above what hoist needs for any of these images (120 to 300 MB), far below what they once took (875 MB to 3.3 GB). */
const RSS_BOUND_KB = 400 * 1024;

const owner = { uid: 0, gid: 0, mtime: 0 };
const file = (path: string, content: string | Buffer, mode = 0o644): LayerEntry => {
  const bytes = Buffer.from(content);
  return { ...owner, path, type: 'file', mode, size: bytes.length, source: () => Readable.from([bytes]) };
};
const directory = (path: string): LayerEntry => ({ ...owner, path, type: 'directory', mode: 0o755 });
const symlink = (path: string, linkname: string): LayerEntry => ({ ...owner, path, type: 'symlink', mode: 0o777, linkname });

/** A one-layer image of `entries` as an OCI layout tagged `hostile`, made with hoist's own layer writer. */
async function baseLayout(name: string, entries: LayerEntry[]): Promise<string> {
  const layout = join(dir, name);
  const store = await Store.open(layout);
  const layer = await writeLayer(store, entries);
  const image = await writeImage(store, {
    created: '1970-01-01T00:00:00Z', architecture: process.arch === 'x64' ? 'amd64' : process.arch, os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [] }, history: [{ created: '1970-01-01T00:00:00Z', created_by: name }],
  }, [layer]);
  await store.tag('hostile', image.descriptor);
  await rm(join(layout, 'tmp'), { recursive: true, force: true });
  return layout;
}

/** An executable holding Go 1.18's build info (go1.21.5) whose module lines are `modules`, as `go version -m` prints them. */
const goBinary = (modules: string): Buffer => Buffer.concat([Buffer.from('\x7fELF'), Buffer.alloc(12), goBuildInfo(modules)]);

/** A dpkg database of these packages, each listing `files`, and of `more` (status paragraphs), with the os-release that names Debian 12. */
function dpkg(packages: { name: string; version: string; files: string[] }[], more: string[] = []): LayerEntry[] {
  const status = [...packages.map(({ name, version }) => `Package: ${name}\nStatus: install ok installed\nArchitecture: amd64\nVersion: ${version}\n`), ...more].join('\n');
  return [
    directory('etc'), file('etc/os-release', 'ID=debian\nVERSION_ID="12"\n'),
    directory('var'), directory('var/lib'), directory('var/lib/dpkg'), directory('var/lib/dpkg/info'), file('var/lib/dpkg/status', status),
    ...packages.map(({ name, files }) => file(`var/lib/dpkg/info/${name}.list`, `/.\n${files.join('\n')}\n`)),
  ];
}

/** A package every image here holds beside what is hostile: the SBOM must still list it, with its file's SHA-1. */
const GOOD = { name: 'good', version: '1.0-1', files: ['/usr/bin/good'] };
const GOOD_CONTENT = '#!/bin/sh\necho good\n';
const goodEntries = (): LayerEntry[] => [directory('usr'), directory('usr/bin'), file('usr/bin/good', GOOD_CONTENT, 0o755)];

interface Sbom { packages: { name: string; versionInfo?: string; externalRefs: { referenceLocator: string }[] }[]; files: { fileName: string; checksums: { checksumValue: string }[] }[] }

/**
 * `hoist build --sbom=true` of FROM the layout, into an OCI tarball, under /usr/bin/time: its
 * result, its peak RSS, and the statements attached to the image by predicate type. Run in a
 * process group of its own, so that the test's timeout can stop it.
 */
async function build(name: string, layout: string, flags: string[] = []): Promise<Run & { rssKb: number; statements: Map<string, any> }> {
  const ctx = writeContext(dir, `${name}-context`, { Dockerfile: 'FROM base\n' });
  const tarball = join(dir, `${name}.tar`);
  const rssFile = join(dir, `${name}.rss`);
  const child = spawn('/usr/bin/time', ['-f', '%M', '-o', rssFile, join(repoRoot, 'bin', 'hoist'), 'build', '--root', root, '--sbom=true', ...flags,
    '--build-context', `base=oci-layout://${layout}:hostile`, '--output', `type=oci,dest=${tarball}`, ctx], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  running = child;
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk) => (stdout += chunk));
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  const code = await new Promise<number>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (status) => resolve(status ?? -1));
  });
  const run = { code, stdout, stderr };
  const rssKb = Number(readFileSync(rssFile, 'utf8').trim().split('\n').pop());
  const statements = new Map<string, any>();
  if (run.code !== 0) return { ...run, rssKb, statements };
  const out = join(dir, `${name}-out`);
  mkdirSync(out);
  execFileSync('tar', ['-xf', tarball, '-C', out]);
  const blob = (digest: string): any => JSON.parse(readFileSync(join(out, 'blobs', 'sha256', digest.slice(7)), 'utf8'));
  const index = blob(JSON.parse(readFileSync(join(out, 'index.json'), 'utf8')).manifests[0].digest);
  const attestation = index.manifests?.find((each: { annotations?: Record<string, string> }) => each.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest');
  for (const layer of attestation ? blob(attestation.digest).layers : []) {
    const statement = blob(layer.digest);
    statements.set(statement.predicateType, statement.predicate);
  }
  return { ...run, rssKb, statements };
}

const purls = (sbom: Sbom): string[] => sbom.packages.map((each) => each.externalRefs[0]!.referenceLocator);
const sha1 = (content: string): string => createHash('sha1').update(content).digest('hex');
const warnings = (stderr: string): string[] => stderr.split('\n').filter((line) => line.startsWith('warning: '));

test('a package packageurl-js refuses (a Go module version v1, a blank dpkg name) is left out, named, and the build goes on with the rest', async () => {
  const layout = await baseLayout('bad-version', [
    ...goodEntries(), ...dpkg([GOOD, { name: 'after', version: '3', files: [] }], ['Package:  \nStatus: install ok installed\nVersion: 2\n']),
    file('usr/bin/app', goBinary([
      'path\texample.com/app', 'mod\texample.com/app\tv1\t', 'dep\tgolang.org/x/text\tv0.14.0\th1:y=', 'dep\texample.com/worse\tv2.x\th1:z=', 'dep\texample.com/fine\tv1.2.3\th1:w=', '',
    ].join('\n')), 0o755),
  ]);
  const built = await build('bad-version', layout);
  expect(built.code, built.stderr).toBe(0);
  expect(warnings(built.stderr)).toEqual([
    'warning: the SBOM leaves out dpkg package (blank) in /var/lib/dpkg/status (packageurl-js refuses it as a deb package URL)',
    'warning: the SBOM leaves out Go module example.com/app v1 in /usr/bin/app (packageurl-js refuses it as a golang package URL)',
    'warning: the SBOM leaves out Go module example.com/worse v2.x in /usr/bin/app (packageurl-js refuses it as a golang package URL)',
  ]);
  const sbom = built.statements.get('https://spdx.dev/Document') as Sbom;
  expect(purls(sbom)).toEqual(expect.arrayContaining([
    'pkg:deb/debian/good@1.0-1?arch=amd64&distro=debian-12', 'pkg:deb/debian/after@3?arch=amd64&distro=debian-12', 'pkg:golang/golang.org/x/text@v0.14.0', 'pkg:golang/example.com/fine@v1.2.3', 'pkg:golang/stdlib@1.21.5',
  ]));
  expect(purls(sbom).some((purl) => purl.includes('example.com/app') || purl.includes('worse'))).toBe(false);
  expect(sbom.files.find((each) => each.fileName === '/usr/bin/good')?.checksums[0]?.checksumValue).toBe(sha1(GOOD_CONTENT));
}, 120_000);

test('an SBOM that cannot be made at all is left out in one line: the image and its provenance are still written', async () => {
  // A whiteout that names nothing: the image passes through untouched (no step extracts it), but no file tree can be made of it.
  const layout = await baseLayout('no-tree', [...goodEntries(), ...dpkg([GOOD]), file('usr/.wh.', '')]);
  const built = await build('no-tree', layout, ['--provenance=mode=min']);
  expect(built.code, built.stderr).toBe(0);
  const lines = warnings(built.stderr);
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^warning: no SBOM of the image: .*usr\/\.wh\..*; it is built without one$/);
  expect([...built.statements.keys()]).toEqual(['https://slsa.dev/provenance/v1']);
  expect(built.stderr).toContain('attested https://slsa.dev/provenance/v1 of the image');
  // With the SBOM alone asked for, the image goes without an attestation manifest, and nothing says it was attested.
  const alone = await build('no-tree-alone', layout, ['--provenance=false']);
  expect(alone.code, alone.stderr).toBe(0);
  expect(warnings(alone.stderr)).toEqual([lines[0]]);
  expect(alone.statements.size).toBe(0);
  expect(alone.stderr).not.toContain('attested');
}, 120_000);

test('Go build info is read within a budget of bytes and binaries: 32 binaries of 1 MiB of modules stay under 400 MB', async () => {
  // Each binary lists some 70,000 modules in just under 1 MiB, the most hoist reads of one binary.
  const modules = (n: number): string => {
    const lines = [`path\texample.com/bin${n}`, `mod\texample.com/bin${n}\tv1.0.0\t`];
    let length = 0;
    for (let i = 0; length < 999_900; i++) {
      const line = `dep\tm${n}x${i.toString(36)}\tv0.0.1`;
      lines.push(line);
      length += line.length + 1;
    }
    return `${lines.join('\n')}\n`;
  };
  const binaries = Array.from({ length: 32 }, (_, n) => file(`usr/bin/go-${String(n).padStart(2, '0')}`, goBinary(modules(n)), 0o755));
  const layout = await baseLayout('go-count', [...goodEntries(), ...dpkg([GOOD]), ...binaries]);
  const built = await build('go-count', layout);
  console.log(`32 Go binaries of 1 MiB build info each: peak RSS ${Math.round(built.rssKb / 1024)} MB`);
  expect(built.code, built.stderr).toBe(0);
  expect(built.rssKb).toBeLessThan(RSS_BOUND_KB);
  expect(warnings(built.stderr)).toEqual([
    expect.stringMatching(/^warning: the SBOM leaves out the Go build info of \d+ binaries, such as \/usr\/bin\/go-\d\d \(the SBOM reads at most 8 MiB of Go build info in all, from 1024 binaries at most\)$/),
    expect.stringMatching(/^warning: the SBOM leaves out packages past the first 50000, from Go module m\d+x\w+ v0\.0\.1 in \/usr\/bin\/go-\d\d on$/),
  ]);
  const sbom = built.statements.get('https://spdx.dev/Document') as Sbom;
  expect(purls(sbom)).toContain('pkg:deb/debian/good@1.0-1?arch=amd64&distro=debian-12');
  expect(purls(sbom)).toContain('pkg:golang/example.com/bin0@v1.0.0');
  expect(sbom.packages.length).toBeLessThanOrEqual(50_000);
}, 300_000);

test('a dpkg status of four million one-line packages (64 MB) is read only up to the package limit, under 400 MB', async () => {
  const layout = await baseLayout('dpkg-flood', [...goodEntries(), ...dpkg([GOOD], ['Package: flood\n\n'.repeat(4_000_000)])]);
  const built = await build('dpkg-flood', layout);
  console.log(`a dpkg status of 4,000,000 packages: peak RSS ${Math.round(built.rssKb / 1024)} MB`);
  expect(built.code, built.stderr).toBe(0);
  expect(built.rssKb).toBeLessThan(RSS_BOUND_KB);
  expect(warnings(built.stderr)).toEqual(['warning: the SBOM leaves out packages past the first 50000, from dpkg package flood in /var/lib/dpkg/status on']);
  const sbom = built.statements.get('https://spdx.dev/Document') as Sbom;
  expect(purls(sbom)[0]).toBe('pkg:deb/debian/good@1.0-1?arch=amd64&distro=debian-12');
  expect(sbom.packages).toHaveLength(50_000);
}, 300_000);

test('symlinks are followed once per directory and link, within PATH_MAX: a 1 MB ././… link and a 30-link chain over 15,000 listed files', async () => {
  // `l` points at usr through a million bytes of ./ (Linux could never have made it: a target is under 4,096 bytes);
  // c0 → c1 → … → c29 → usr, each target 4,000 bytes of ./ before the next name: legal, 30 hops, resolved once,
  // whether a file is listed under c0 itself or under one of 5,000 other links to c0/share. In a directory of 2,007 bytes,
  // `y` points 2,200 bytes of z/ further: no path that long can be looked up.
  const dots = (bytes: number): string => './'.repeat(bytes / 2);
  const chain = Array.from({ length: 30 }, (_, i) => symlink(`c${i}`, `${dots(4000)}${i === 29 ? 'usr' : `c${i + 1}`}`));
  const count = 5000;
  const names = Array.from({ length: count }, (_, i) => `f${i}`);
  const deep = Array.from({ length: 8 }, (_, i) => `${i}${'n'.repeat(249)}`);
  const deepDirectories = deep.map((_, i) => directory(deep.slice(0, i + 1).join('/')));
  const layout = await baseLayout('symlinks', [
    ...deepDirectories, symlink(`${deep.join('/')}/y`, 'z/'.repeat(1100)),
    ...goodEntries(), symlink('l', `${dots(1_000_000)}usr`), ...chain, ...names.map((name) => symlink(`e${name}`, 'c0/share')),
    directory('usr/share'), directory('usr/share/listed'), ...names.map((name) => file(`usr/share/listed/${name}`, name)),
    ...dpkg([GOOD, { name: 'through-l', version: '1', files: names.map((name) => `/l/share/listed/${name}`) }, { name: 'chained', version: '2', files: names.map((name) => `/c0/share/listed/${name}`) },
      { name: 'linked', version: '3', files: names.map((name) => `/e${name}/listed/${name}`) }, { name: 'deep', version: '4', files: [`/${deep.join('/')}/y/f`] }]),
  ]);
  const built = await build('symlinks', layout);
  console.log(`1 MB link and a 30-link chain over ${3 * count} listed files: peak RSS ${Math.round(built.rssKb / 1024)} MB`);
  expect(built.code, built.stderr).toBe(0);
  expect(built.rssKb).toBeLessThan(RSS_BOUND_KB);
  expect(warnings(built.stderr)).toEqual([
    `warning: the SBOM leaves out the checksums of ${count} files whose path it could not follow, such as /l/share/listed/f0 (/l links to a target of 1000003 bytes, longer than Linux's 4095)`,
    `warning: the SBOM leaves out the checksum of /${deep.join('/').slice(0, 119)}… (it leads to a path longer than Linux's 4095 bytes)`,
  ]);
  const sbom = built.statements.get('https://spdx.dev/Document') as Sbom;
  expect(purls(sbom)).toEqual(expect.arrayContaining(['pkg:deb/debian/good@1.0-1?arch=amd64&distro=debian-12', 'pkg:deb/debian/through-l@1?arch=amd64&distro=debian-12', 'pkg:deb/debian/chained@2?arch=amd64&distro=debian-12', 'pkg:deb/debian/linked@3?arch=amd64&distro=debian-12']));
  // Through the chain every file is found, with its SHA-1; through the overlong link none is.
  const checksums = new Map(sbom.files.map((each) => [each.fileName, each.checksums[0]!.checksumValue]));
  expect(checksums.get('/usr/bin/good')).toBe(sha1(GOOD_CONTENT));
  expect(names.filter((name) => checksums.get(`/c0/share/listed/${name}`) === sha1(name))).toHaveLength(count);
  expect(names.filter((name) => checksums.get(`/e${name}/listed/${name}`) === sha1(name))).toHaveLength(count);
  expect(names.filter((name) => checksums.has(`/l/share/listed/${name}`))).toEqual([]);
}, 300_000);

test('following symlinks stops after 256 MiB of path walked in all, naming what it left out; the rest is listed', async () => {
  // 100 legal links in a directory of 2,007 bytes, each through 2,000 `.` parts: each step re-walks the long directory.
  const deep = Array.from({ length: 8 }, (_, i) => `${i}${'n'.repeat(249)}`);
  const links = Array.from({ length: 100 }, (_, i) => symlink(`${deep.join('/')}/k${i}`, `${'./'.repeat(2000)}x`));
  const layout = await baseLayout('link-work', [
    ...goodEntries(), ...deep.map((_, i) => directory(deep.slice(0, i + 1).join('/'))), ...links,
    ...dpkg([GOOD, { name: 'walked', version: '1', files: links.map((link) => `/${link.path}/f`) }]),
  ]);
  const built = await build('link-work', layout);
  expect(built.code, built.stderr).toBe(0);
  expect(warnings(built.stderr)).toEqual([
    expect.stringMatching(/^warning: the SBOM leaves out the checksums of \d+ files whose path it could not follow, such as \/0n+… \(the SBOM follows symlinks through at most 256 MiB of paths\)$/),
  ]);
  const sbom = built.statements.get('https://spdx.dev/Document') as Sbom;
  expect(purls(sbom)).toEqual(expect.arrayContaining(['pkg:deb/debian/good@1.0-1?arch=amd64&distro=debian-12', 'pkg:deb/debian/walked@1?arch=amd64&distro=debian-12']));
  expect(sbom.files.find((each) => each.fileName === '/usr/bin/good')?.checksums[0]?.checksumValue).toBe(sha1(GOOD_CONTENT));
}, 120_000);
