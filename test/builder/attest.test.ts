// Provenance and SBOM attestations, attached as BuildKit attaches them, judged from outside: skopeo
// reads and copies the index from a real registry, every statement is validated against the
// in-toto Statement v1 schema and its predicate's (SLSA provenance v1, SPDX 2.3), kept as test data
// (test/support/schemas/SOURCES.md says where each came from), and the SBOM's versions are
// compared with the image's own dpkg status file.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Ajv, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { gitIn } from '../support/git.ts';
import { GO_BUILDINFO_MAGIC, goBuildInfo } from '../support/go-binary.ts';
import { hoist, hoistOk, makeBusyboxLayout, removeTree, writeContext } from '../support/hoist.ts';
import { debianLayout } from '../support/oci-layouts.ts';
import { repoRoot } from '../support/paths.ts';
import { startRegistry, type Registry } from '../support/registry.ts';

let dir: string;
let root: string;
let registry: Registry;
let debianDigest: string;

const skopeo = (...args: string[]): string => execFileSync('skopeo', args, { encoding: 'utf8', maxBuffer: 1 << 28 });
const schema = (name: string): object => JSON.parse(readFileSync(join(repoRoot, 'test', 'support', 'schemas', name), 'utf8'));
const ajv = new Ajv({ allErrors: true });
addFormats.default(ajv);
// CycloneDX's schema refers to its licence list and JSF schemas, and to two formats ajv-formats lacks.
ajv.addSchema(schema('spdx.schema.json')).addSchema(schema('jsf-0.82.schema.json')).addFormat('iri-reference', true).addFormat('idn-email', true);
const validators: Record<string, ValidateFunction> = {
  statement: ajv.compile(schema('in-toto-statement-v1.schema.json')),
  'https://slsa.dev/provenance/v1': ajv.compile(schema('slsa-provenance-v1.schema.json')),
  'https://spdx.dev/Document': ajv.compile(schema('spdx-2.3.schema.json')),
  'https://cyclonedx.org/bom': ajv.compile(schema('cyclonedx-1.5.schema.json')),
};

/** Validates a statement and its predicate; the errors are the test's failure message. */
function validate(statement: { predicateType: string; predicate: unknown }): void {
  const check = (validator: ValidateFunction, value: unknown, what: string): void => {
    if (!validator(value)) throw new Error(`${what} is not valid: ${ajv.errorsText(validator.errors)}`);
  };
  check(validators.statement!, statement, 'the statement');
  check(validators[statement.predicateType]!, statement.predicate, statement.predicateType);
}

interface IndexEntry { digest: string; platform: { os: string; architecture: string; variant?: string }; annotations?: Record<string, string> }
interface Statement { _type: string; subject: { name: string; digest: { sha256: string } }[]; predicateType: string; predicate: any }

/** An OCI layout's blob, parsed. */
const blob = (layout: string, digest: string): any => JSON.parse(readFileSync(join(layout, 'blobs', 'sha256', digest.slice(7)), 'utf8'));

/** The index a tag names in the registry, copied whole (skopeo copy --all) into an OCI layout, with its attestations. */
function copied(ref: string, name: string): { layout: string; index: { manifests: IndexEntry[] }; statements: (imageDigest: string) => Statement[] } {
  const layout = join(dir, name);
  skopeo('copy', '--all', '--src-tls-verify=false', `docker://${ref}`, `oci:${layout}:x`);
  const index = blob(layout, JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')).manifests[0].digest);
  const statements = (imageDigest: string): Statement[] => {
    const entry = index.manifests.find((each: IndexEntry) => each.annotations?.['vnd.docker.reference.digest'] === imageDigest);
    if (!entry) throw new Error(`no attestation manifest for ${imageDigest}`);
    return blob(layout, entry.digest).layers.map((layer: { digest: string; mediaType: string; annotations: Record<string, string> }) => {
      expect(layer.mediaType).toBe('application/vnd.in-toto+json');
      const statement = blob(layout, layer.digest) as Statement;
      expect(layer.annotations['in-toto.io/predicate-type']).toBe(statement.predicateType);
      return statement;
    });
  };
  return { layout, index, statements };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hoist-attest-'));
  root = join(dir, 'store');
  registry = await startRegistry();
  skopeo('copy', '--dest-tls-verify=false', `oci:${await debianLayout(join(dir, 'debian'))}:bookworm`, `docker://${registry.host}/debian:bookworm`);
  skopeo('copy', '--dest-tls-verify=false', `oci:${makeBusyboxLayout(join(dir, 'busybox'))}:latest`, `docker://${registry.host}/busybox:latest`);
  debianDigest = skopeo('inspect', '--tls-verify=false', '--format', '{{.Digest}}', `docker://${registry.host}/debian:bookworm`).trim();
}, 300_000);
afterAll(async () => {
  await registry?.stop();
  removeTree(dir);
});

const SECRET = 'hoist-attest-secret-4f1d9a';

test('Debian with apt-get install python3: provenance (mode=max) and an SPDX SBOM in the pushed index, valid, exact, without the secret', () => {
  const secretFile = join(dir, 'secret');
  writeFileSync(secretFile, SECRET);
  const ctx = writeContext(dir, 'apt', {
    Dockerfile: [
      `FROM ${registry.host}/debian:bookworm`,
      'ARG GREETING',
      // The step checks the secret by its hash: its value is in no file but the secret's.
      `RUN --mount=type=secret,id=token test "$(sha256sum < /run/secrets/token | cut -c1-64)" = ${createHash('sha256').update(SECRET).digest('hex')} && echo "$GREETING" > /greeting`,
      'RUN apt-get update && apt-get install -y --no-install-recommends python3 && rm -rf /var/lib/apt/lists/*',
    ].join('\n'),
  });
  const ref = `${registry.host}/py:1`;
  const env = { SOURCE_DATE_EPOCH: '1700000000' };
  hoistOk(['build', '--root', root, '--secret', `id=token,src=${secretFile}`, '--build-arg', 'GREETING=hello', '--provenance=mode=max', '--sbom=true', '-t', ref, '--push', ctx], { env });

  const { layout, index, statements } = copied(ref, 'py');
  expect(index.manifests).toHaveLength(2);
  const [image, attestation] = index.manifests as [IndexEntry, IndexEntry];
  expect(image.platform).toEqual({ architecture: 'amd64', os: 'linux' });
  expect(attestation.platform).toEqual({ architecture: 'unknown', os: 'unknown' });
  expect(attestation.annotations).toEqual({ 'vnd.docker.reference.type': 'attestation-manifest', 'vnd.docker.reference.digest': image.digest });
  const [provenance, sbom] = statements(image.digest) as [Statement, Statement];
  expect([provenance.predicateType, sbom.predicateType]).toEqual(['https://slsa.dev/provenance/v1', 'https://spdx.dev/Document']);
  for (const statement of [provenance, sbom]) {
    validate(statement);
    expect(statement.subject).toEqual([{ name: `pkg:docker/${registry.host}/py@1?platform=linux%2Famd64`, digest: { sha256: image.digest.slice(7) } }]);
  }

  // The base as pulled, by the digest the registry has for it; mode=max's request and Dockerfile.
  expect(provenance.predicate.buildDefinition.resolvedDependencies).toEqual([{ uri: `pkg:docker/${registry.host}/debian@bookworm?platform=linux%2Famd64`, digest: { sha256: debianDigest.slice(7) } }]);
  expect(provenance.predicate.buildDefinition.externalParameters.request.args).toEqual({ 'build-arg:GREETING': 'hello' });
  expect(provenance.predicate.buildDefinition.externalParameters.request.secrets).toEqual([{ id: 'token', optional: false }]);
  const [source] = provenance.predicate.runDetails.metadata.buildkit_metadata.source.infos;
  expect(Buffer.from(source.data, 'base64').toString()).toBe(readFileSync(join(ctx, 'Dockerfile'), 'utf8'));
  expect(provenance.predicate.runDetails.builder.version.hoist).toMatch(/^\d+\.\d+\.\d+/);

  // The SBOM's versions are those in the image's own dpkg status file.
  const bundle = join(dir, 'py-bundle');
  skopeo('copy', '--src-tls-verify=false', `docker://${ref}`, `oci:${join(dir, 'py-one')}:x`);
  execFileSync('umoci', ['unpack', '--rootless', '--image', `${join(dir, 'py-one')}:x`, bundle]);
  const status = readFileSync(join(bundle, 'rootfs', 'var', 'lib', 'dpkg', 'status'), 'utf8');
  for (const name of ['python3', 'bash']) {
    const version = new RegExp(`^Package: ${name}\\n(?:[^\\n]+\\n)*?Version: (\\S+)`, 'm').exec(status)![1]!;
    const listed = sbom.predicate.packages.filter((each: { name: string }) => each.name === name);
    expect(listed.map((each: { versionInfo: string }) => each.versionInfo)).toEqual([version]);
    expect(listed[0].externalRefs[0].referenceLocator).toBe(`pkg:deb/debian/${name}@${version}?arch=amd64&distro=debian-12`);
  }
  // Files with their SHA-1, as dpkg lists them: /usr/bin/bash's matches the file's.
  const bashFile = sbom.predicate.files.find((file: { fileName: string }) => file.fileName === '/bin/bash' || file.fileName === '/usr/bin/bash');
  expect(bashFile.checksums[0].checksumValue).toBe(execFileSync('sha1sum', [join(bundle, 'rootfs', 'usr', 'bin', 'bash')], { encoding: 'utf8' }).split(' ')[0]);

  // The secret is in no blob of the index: not in an attestation, a layer, a config or history.
  for (const file of readdirSync(join(layout, 'blobs', 'sha256'))) {
    const content = readFileSync(join(layout, 'blobs', 'sha256', file));
    const bytes = content[0] === 0x1f && content[1] === 0x8b ? gunzipSync(content) : content;
    expect(bytes.includes(SECRET), `blob ${file}`).toBe(false);
  }

  // Attestations never change the image's own manifest: the same build without them gives it.
  const plain = hoistOk(['build', '--root', root, '--secret', `id=token,src=${secretFile}`, '--build-arg', 'GREETING=hello', '--provenance=false', '-t', `${registry.host}/py:plain`, '--push', '--iidfile', join(dir, 'plain-iid'), ctx], { env });
  expect(plain.stderr).not.toContain('attested');
  const plainManifest = skopeo('inspect', '--raw', '--tls-verify=false', `docker://${registry.host}/py:plain`);
  expect(JSON.parse(plainManifest).mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
  expect(`sha256:${execFileSync('sha256sum', { input: plainManifest, encoding: 'utf8' }).split(' ')[0]}`).toBe(image.digest);
}, 600_000);

test('pushing attaches mode=min provenance by default: no build-arg values, no secrets, no Dockerfile; it can be turned off', () => {
  const ctx = writeContext(dir, 'min', { Dockerfile: `FROM ${registry.host}/busybox AS final\nARG PASSWORDISH\nCOPY --from=${registry.host}/busybox /bin/busybox /copied\n` });
  const ref = `${registry.host}/min:1`;
  const built = hoistOk(['build', '--root', root, '--build-arg', 'PASSWORDISH=do-not-record', '--target', 'final', '-t', ref, '--push', ctx]);
  expect(built.stderr).toContain('attested https://slsa.dev/provenance/v1 of the image');
  const { index, statements } = copied(ref, 'min');
  const [provenance, ...others] = statements(index.manifests[0]!.digest) as [Statement];
  expect(others).toEqual([]);
  validate(provenance);
  const text = JSON.stringify(provenance);
  expect(text).not.toContain('do-not-record');
  expect(text).not.toContain('PASSWORDISH');
  expect(provenance.predicate.buildDefinition.externalParameters.request).toEqual({ frontend: 'dockerfile.v0', args: { target: 'final' }, locals: [{ name: 'context' }, { name: 'dockerfile' }] });
  expect(provenance.predicate.runDetails.metadata.buildkit_metadata).toBeUndefined();
  // The FROM image and the COPY --from image, each once.
  const busybox = skopeo('inspect', '--tls-verify=false', '--format', '{{.Digest}}', `docker://${registry.host}/busybox`).trim();
  expect(provenance.predicate.buildDefinition.resolvedDependencies).toEqual([{ uri: `pkg:docker/${registry.host}/busybox@latest?platform=linux%2Famd64`, digest: { sha256: busybox.slice(7) } }]);

  for (const [flags, env] of [[['--provenance=false'], {}], [[], { BUILDX_NO_DEFAULT_ATTESTATIONS: '1' }]] as const) {
    hoistOk(['build', '--root', root, ...flags, '-t', `${registry.host}/min:off`, '--push', ctx], { env });
    expect(JSON.parse(skopeo('inspect', '--raw', '--tls-verify=false', `docker://${registry.host}/min:off`)).mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
  }
}, 300_000);

test('two platforms: an attestation manifest for each image in the index and the OCI tarball, files beside each type=local file system', () => {
  const ctx = writeContext(dir, 'two', { Dockerfile: `FROM --platform=$BUILDPLATFORM ${registry.host}/busybox AS build\nARG TARGETARCH\nRUN echo $TARGETARCH > /arch\nFROM scratch\nCOPY --from=build /arch /arch\n` });
  const ref = `${registry.host}/two:1`;
  const local = join(dir, 'two-local');
  hoistOk(['build', '--root', root, '--platform', 'linux/amd64,linux/arm64', '--sbom=true', '--attest', 'type=provenance,mode=max', '-t', ref, '--push',
    '--output', `type=oci,dest=${join(dir, 'two.tar')}`, '--output', `type=local,dest=${local}`, ctx]);
  const { index, statements } = copied(ref, 'two');
  expect(index.manifests.map((each) => `${each.platform.os}/${each.platform.architecture}`)).toEqual(['linux/amd64', 'linux/arm64', 'unknown/unknown', 'unknown/unknown']);
  for (const [i, arch] of ['amd64', 'arm64'].entries()) {
    const image = index.manifests[i]!;
    expect(index.manifests[i + 2]!.annotations!['vnd.docker.reference.digest']).toBe(image.digest);
    const found = statements(image.digest);
    for (const statement of found) {
      validate(statement);
      expect(statement.subject[0]!.name).toBe(`pkg:docker/${registry.host}/two@1?platform=linux%2F${arch}`);
    }
    // The build stage ran on the build platform: its base is the build platform's.
    expect(found[0]!.predicate.buildDefinition.resolvedDependencies[0].uri).toBe(`pkg:docker/${registry.host}/busybox@latest?platform=linux%2Famd64`);
    const files = join(local, `linux_${arch}`);
    expect(readFileSync(join(files, 'arch'), 'utf8')).toBe(`${arch}\n`);
    expect(JSON.parse(readFileSync(join(files, 'provenance.json'), 'utf8')).predicateType).toBe('https://slsa.dev/provenance/v1');
    expect(JSON.parse(readFileSync(join(files, 'sbom.spdx.json'), 'utf8')).predicate.spdxVersion).toBe('SPDX-2.3');
  }
  const tarball = JSON.parse(skopeo('inspect', '--raw', `oci-archive:${join(dir, 'two.tar')}:1`));
  expect(tarball.manifests.filter((each: IndexEntry) => each.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest')).toHaveLength(2);

  // A type=docker archive holds no attestations: asking for them with it alone is refused.
  const refused = hoist(['build', '--root', root, '--sbom=true', '--output', `type=docker,dest=${join(dir, 'x.tar')}`, ctx]);
  expect(refused.code).toBe(2);
  expect(refused.stderr).toContain('type=docker holds none');
  const unknown = hoist(['build', '--root', root, '--attest', 'type=sbom,generator=docker/scout-sbom-indexer', '-t', 'x', ctx]);
  expect(unknown.code).toBe(2);
  expect(unknown.stderr).toContain('"generator"');
}, 300_000);

/**
 * An executable with Go 1.18's build-info layout at offset 64, after a decoy copy of the magic at
 * an offset no build info can have (Go's reader takes only multiples of 16).
 */
function fakeGoBinary(): Buffer {
  const modules = 'path\texample.com/fake/cmd\nmod\texample.com/fake\tv1.2.3\th1:x=\ndep\tgolang.org/x/text\tv0.14.0\th1:y=\n';
  return Buffer.concat([Buffer.alloc(3), GO_BUILDINFO_MAGIC, Buffer.from([8, 2]), Buffer.alloc(64 - 19), goBuildInfo(modules)]);
}

/** A lock file of version 1, its dependencies nested `depth` deep. */
function deepLock(depth: number): string {
  let dependencies = '{}';
  for (let i = depth - 1; i >= 0; i--) dependencies = `{"deep-${i}":{"version":"1.0.0","dependencies":${dependencies}}}`;
  return `{"lockfileVersion":1,"dependencies":${dependencies}}`;
}

test('the SBOM reads apk, Python, npm and Go build info, and skips what does not parse; provenance records the context\'s git commit without credentials', () => {
  const files: Record<string, string> = {
    'lib/apk/db/installed': 'C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\nF:lib\nR:ld-musl-x86_64.so.1\n\nP:zlib\nV:1.3.1-r0\nA:x86_64\nL:Zlib\n\n',
    'etc/os-release': 'ID=alpine\nVERSION_ID=3.19.1\n',
    'lib/ld-musl-x86_64.so.1': 'not really musl\n',
    'usr/lib/python3/site-packages/requests-2.31.0.dist-info/METADATA': 'Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\nLicense: Apache-2.0\n\nbody\n',
    'usr/lib/python3/site-packages/requests-2.31.0.dist-info/RECORD': 'requests/__init__.py,sha256=x,10\nrequests-2.31.0.dist-info/METADATA,,\n',
    'usr/lib/python3/site-packages/requests/__init__.py': '# requests\n',
    'app/node_modules/left-pad/package.json': JSON.stringify({ name: 'left-pad', version: '1.3.0', license: 'WTFPL' }),
    'app/node_modules/@scope/thing/package.json': JSON.stringify({ name: '@scope/thing', version: '2.0.0', license: 'MIT' }),
    'app/package-lock.json': JSON.stringify({ lockfileVersion: 3, packages: { '': { name: 'app' }, 'node_modules/left-pad': { version: '1.3.0' }, 'node_modules/only-locked': { version: '0.1.0', license: 'ISC' } } }),
    // What an image may hold that is no package: an empty name, a file that is not JSON, a deep lock file.
    'app/node_modules/nameless/package.json': JSON.stringify({ name: '', version: '1.0.0' }),
    'app/node_modules/broken/package.json': '{ not json',
    'legacy/package-lock.json': deepLock(3000),
  };
  const ctx = writeContext(dir, 'catalog', { ...files, Dockerfile: 'FROM scratch\nCOPY . /\nCOPY skopeo /usr/bin/skopeo\n' });
  execFileSync('cp', ['/usr/bin/skopeo', join(ctx, 'skopeo')]);
  mkdirSync(join(ctx, 'usr', 'bin'));
  writeFileSync(join(ctx, 'usr', 'bin', 'fake-go'), fakeGoBinary(), { mode: 0o755 });
  // The context is a git checkout whose remote URL carries a token.
  const git = (...args: string[]): string => gitIn(ctx, ...args);
  git('init', '-q');
  git('remote', 'add', 'origin', 'https://builder:ghp_notarealtoken@example.com/org/app.git');
  git('add', 'Dockerfile');
  git('commit', '-q', '-m', 'x');
  const commit = git('rev-parse', 'HEAD');
  writeFileSync(join(ctx, '.dockerignore'), '.git\n');

  const out = join(dir, 'catalog-local');
  const built = hoistOk(['build', '--root', root, '--sbom=true', '--provenance=true', '--output', `type=local,dest=${out}`, ctx]);
  expect(built.stderr).toMatch(/warning: the SBOM leaves out \/app\/node_modules\/broken\/package\.json \(.*JSON/);
  const provenance = JSON.parse(readFileSync(join(out, 'provenance.json'), 'utf8'));
  const sbom = JSON.parse(readFileSync(join(out, 'sbom.spdx.json'), 'utf8'));
  validate(provenance);
  validate(sbom);
  expect(JSON.stringify(provenance)).not.toContain('ghp_notarealtoken');
  expect(provenance.predicate.buildDefinition.resolvedDependencies).toEqual([{ uri: 'https://example.com/org/app.git', name: 'context', digest: { gitCommit: commit, sha1: commit } }]);

  const purls = sbom.predicate.packages.map((each: { externalRefs: { referenceLocator: string }[] }) => each.externalRefs[0]!.referenceLocator);
  expect(purls).toEqual(expect.arrayContaining([
    'pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64&distro=alpine-3.19.1', 'pkg:apk/alpine/zlib@1.3.1-r0?arch=x86_64&distro=alpine-3.19.1',
    'pkg:pypi/requests@2.31.0', 'pkg:npm/left-pad@1.3.0', 'pkg:npm/%40scope/thing@2.0.0', 'pkg:npm/only-locked@0.1.0',
    'pkg:golang/github.com/containers/skopeo/cmd/skopeo',
    'pkg:golang/example.com/fake@v1.2.3', 'pkg:golang/golang.org/x/text@v0.14.0', 'pkg:golang/stdlib@1.21.5', 'pkg:npm/deep-2999@1.0.0',
  ]));
  expect(sbom.predicate.packages.filter((each: { name: string }) => each.name === '')).toEqual([]);
  // Once each: left-pad is installed and locked.
  expect(purls.filter((purl: string) => purl === 'pkg:npm/left-pad@1.3.0')).toHaveLength(1);
  // Go's standard library, at the version the binary names after the build-info magic.
  const binary = readFileSync('/usr/bin/skopeo');
  const goVersion = /go(1\.\d+(?:\.\d+)?)/.exec(binary.subarray(binary.indexOf('\xff Go buildinf:', 0, 'latin1'), binary.indexOf('\xff Go buildinf:', 0, 'latin1') + 64).toString('latin1'))![1];
  expect(purls).toContain(`pkg:golang/stdlib@${goVersion}`);
  const musl = sbom.predicate.packages.find((each: { name: string }) => each.name === 'musl');
  expect(musl.licenseDeclared).toBe('MIT');
  const muslFile = sbom.predicate.files.find((file: { fileName: string }) => file.fileName === '/lib/ld-musl-x86_64.so.1');
  expect(muslFile.checksums[0].checksumValue).toBe(execFileSync('sha1sum', { input: files['lib/ld-musl-x86_64.so.1'], encoding: 'utf8' }).split(' ')[0]);
  const requestsFiles = sbom.predicate.relationships.filter((each: { spdxElementId: string; relationshipType: string }) => each.relationshipType === 'CONTAINS' && each.spdxElementId.includes('requests'));
  expect(requestsFiles.length).toBe(2);
  expect(existsSync(join(out, 'usr', 'bin', 'skopeo'))).toBe(true);

  // The same packages as CycloneDX 1.5, valid against its schema.
  const cdxOut = join(dir, 'catalog-cdx');
  hoistOk(['build', '--root', root, '--attest', 'type=sbom,format=cyclonedx', '--output', `type=local,dest=${cdxOut}`, ctx]);
  const cdx = JSON.parse(readFileSync(join(cdxOut, 'sbom.cdx.json'), 'utf8'));
  validate(cdx);
  expect(cdx.predicate.components.map((each: { purl: string }) => each.purl)).toEqual(purls);
  expect(cdx.predicate.components.find((each: { name: string }) => each.name === 'left-pad').licenses).toEqual([{ expression: 'WTFPL' }]);
  expect(existsSync(join(cdxOut, 'provenance.json'))).toBe(false);
}, 300_000);
