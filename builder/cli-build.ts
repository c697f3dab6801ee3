// `hoist build`: the flags made into a BuildRequest, then the outputs, the cache export and the results.
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import type { Writable } from 'node:stream';
import pLimit from 'p-limit';
import { formatPlatform, parsePlatforms, type Platform } from '../parser/index.ts';
import {
  applyLayers, changedEntries, familiarReference, parseReference, platformMatches, recompressed, Store, writeAttestations, writeDockerArchive, writeFilesystemTar,
  writeImage, writeIndex, writeOciLayout, type Descriptor, type Image,
} from '../layers/index.ts';
import { inGithubActions, StageGroups } from './actions.ts';
import { build } from './build.ts';
import { parseNamedContext, type NamedContext, type UsedImage } from './images.ts';
import { BuildCache } from './cache.ts';
import { exportCache, importCache } from './cache-transfer.ts';
import { detectHost } from './host.ts';
import { ISOLATION_MODES, type IsolationMode } from './isolation.ts';
import {
  parse, openStore, keyValues, type OutputCompression, type OutputSpec, type Annotation, type AnnotationLevel, parseAnnotation, parseAttestations, parseOutput, parseRunDefaults, reference, parseCacheSpec, readSecrets, readStdin,
  REGISTRY_FLAGS, registryOptions, writeResult,
} from './cli-options.ts';
import { boundedLines, BuildError, UsageError } from './errors.ts';
import { help } from './cli-help.ts';
import { attestationFiles, attestImages } from './attestations.ts';
import { pushAndReport } from './cli-images.ts';
import { runChecks } from './cli-check.ts';
import { loadInto, onPath } from './load.ts';
import { rawJsonProgress, ttyProgress, type Progress } from './progress.ts';
import { inside, isRemoteContext, materializeContext } from './remote-context.ts';
import { parseSshSpec } from './ssh.ts';

/**
 * The compression of the build's new layers (and, with force-compression, of every layer), which
 * every image output must agree on: a build makes its layers once.
 */
function layerCompression(outputs: OutputSpec[]): OutputCompression | undefined {
  const imageOutputs = outputs.filter((output) => output.type !== 'local' && output.type !== 'tar');
  const asked = imageOutputs.map((output): OutputCompression => output.compression ?? { type: 'gzip', force: false });
  const [first] = asked;
  const same = (a: OutputCompression, b: OutputCompression): boolean => a.type === b.type && a.level === b.level && a.force === b.force;
  if (first && asked.some((each) => !same(each, first))) {
    throw new UsageError('the outputs ask for different layer compressions: a build makes its layers one way, so give every image output the same compression=, compression-level= and force-compression=');
  }
  return imageOutputs.some((output) => output.compression) ? first : undefined;
}

/**
 * The annotations every image output gets: --annotation's and the outputs' own, which must agree,
 * as a build makes its manifests once. Index annotations need an index (`index`: several platforms
 * or attestations), and index-descriptor ones an OCI layout to hold them.
 */
function imageAnnotations(outputs: OutputSpec[], given: Annotation[], index: boolean): Annotation[] {
  const carriers = outputs.filter((output) => output.type === 'image' || output.type === 'oci');
  const asked = carriers.map((output) => [...given, ...output.annotations]);
  const text = (list: Annotation[]): string => JSON.stringify(list.map(({ level, platform, key, value }) => [level, platform && formatPlatform(platform), key, value]).sort());
  if (asked.some((each) => text(each) !== text(asked[0]!))) throw new UsageError('the outputs ask for different annotations: a build makes its manifests once, so give every image output the same ones');
  const all = asked[0] ?? [];
  if (given.length > 0 && carriers.length === 0) throw new UsageError('--annotation needs an output that holds manifests: -t, --push, or --output type=image|registry|oci');
  const needsIndex = all.find((each) => each.level === 'index' || each.level === 'manifest-descriptor');
  if (needsIndex && !index) throw new UsageError(`annotation ${needsIndex.level}:${needsIndex.key}: this build makes one image manifest and no index (an index comes with several --platform values or attestations)`);
  const descriptor = all.find((each) => each.level === 'index-descriptor');
  if (descriptor && !carriers.every((output) => output.type === 'oci')) throw new UsageError(`annotation index-descriptor:${descriptor.key}: only an OCI layout (--output type=oci) has an index.json to hold it`);
  return all;
}

export async function buildCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse('build', args, {
    file: { type: 'string', short: 'f' }, tag: { type: 'string', short: 't', multiple: true },
    'build-arg': { type: 'string', multiple: true }, target: { type: 'string' }, label: { type: 'string', multiple: true },
    platform: { type: 'string', multiple: true }, 'no-cache': { type: 'boolean' }, 'no-cache-filter': { type: 'string', multiple: true }, timestamp: { type: 'string' },
    secret: { type: 'string', multiple: true }, 'build-context': { type: 'string', multiple: true }, 'cache-from': { type: 'string', multiple: true }, 'cache-to': { type: 'string', multiple: true }, output: { type: 'string', short: 'o', multiple: true },
    iidfile: { type: 'string' }, 'metadata-file': { type: 'string' }, progress: { type: 'string' }, quiet: { type: 'boolean', short: 'q' },
    jobs: { type: 'string' }, push: { type: 'boolean' }, load: { type: 'boolean' }, pull: { type: 'boolean' }, isolation: { type: 'string' },
    call: { type: 'string' }, check: { type: 'boolean' }, attest: { type: 'string', multiple: true }, provenance: { type: 'string' }, sbom: { type: 'string' },
    annotation: { type: 'string', multiple: true }, ssh: { type: 'string', multiple: true }, network: { type: 'string' }, 'add-host': { type: 'string', multiple: true }, 'shm-size': { type: 'string' }, ulimit: { type: 'string', multiple: true }, allow: { type: 'string', multiple: true }, ...REGISTRY_FLAGS,
  });
  if (values.help) return help('build');
  if (positionals.length !== 1) throw new UsageError(`build takes exactly one CONTEXT directory, got ${positionals.length} (see 'hoist build --help')`);
  // A directory, or what buildx also takes: `-`, a tarball (a file or a URL), a git repository.
  const contextArg = positionals[0]!;
  const remoteContext = await isRemoteContext(contextArg);
  if (!remoteContext && !(await stat(contextArg).catch(() => undefined))?.isDirectory()) throw new UsageError(`context "${contextArg}" is not a directory, a tarball, a URL or -`);
  if (contextArg === '-' && values.file === '-') throw new UsageError('the context and the Dockerfile cannot both come from standard input');
  const progress = (values.progress as string | undefined) ?? 'auto';
  if (!['auto', 'plain', 'tty', 'rawjson', 'quiet'].includes(progress)) throw new UsageError(`--progress ${progress}: use auto, plain, tty, rawjson or quiet`);
  const quiet = values.quiet === true || progress === 'quiet';
  const call = values.check === true ? 'check' : ((values.call as string | undefined) ?? 'build');
  if (call !== 'build' && call !== 'check') throw new UsageError(`--call ${call}: hoist takes build and check (not outline or targets)`);
  const jobs = values.jobs === undefined ? undefined : Number(values.jobs);
  if (jobs !== undefined && !(Number.isInteger(jobs) && jobs > 0)) throw new UsageError(`--jobs ${values.jobs}: expected a whole number above 0`);
  const isolation = (values.isolation as string | undefined) ?? 'auto';
  if (isolation !== 'auto' && !(ISOLATION_MODES as readonly string[]).includes(isolation)) throw new UsageError(`--isolation ${isolation}: use auto, userns, container or none`);
  let platforms: Platform[];
  try {
    platforms = parsePlatforms((values.platform as string[] | undefined) ?? []);
  } catch (error) {
    throw new UsageError(`--platform: ${(error as Error).message}`);
  }
  const tags = ((values.tag as string[] | undefined) ?? []).map((tag) => reference(tag, '-t'));
  const outputs = ((values.output as string[] | undefined) ?? []).map(parseOutput);
  // --push is buildx's shorthand for --output type=registry; -t names what an output leaves unnamed.
  if (outputs.length === 0 && tags.length > 0) outputs.push({ type: 'image', tar: false, names: [], push: false, annotations: [] });
  if (values.push === true && !outputs.some((output) => output.type === 'image')) outputs.push({ type: 'image', tar: false, names: [], push: true, annotations: [] });
  if (values.push === true) for (const output of outputs.filter((each) => each.type === 'image')) output.push = true;
  // --load: hoist has no daemon, so the image goes to the docker (or podman) CLI's `load`.
  if (values.load === true) {
    const cli = ['docker', 'podman'].map(onPath).find((path) => path !== undefined);
    if (!cli) throw new UsageError('--load: there is no docker or podman on PATH to load the image into (hoist has no daemon of its own): write it with --output type=docker,dest=FILE');
    outputs.push({ type: 'docker', tar: true, names: [], push: false, annotations: [], load: cli });
  }
  const namesOf = (output: OutputSpec): string[] => (output.names.length > 0 ? output.names : tags);
  // A tarball on standard output: then the result line goes to stderr.
  const toStdout = outputs.filter((output) => output.dest === '-').length;
  if (toStdout > 1) throw new UsageError('only one --output can write to standard output');
  if (toStdout > 0 && process.stdout.isTTY) throw new UsageError('refusing to write a tarball to a terminal: redirect standard output to a file or a pipe');
  const destination = (output: OutputSpec): string | Writable => (output.dest === '-' ? process.stdout : output.dest!);
  for (const output of outputs) {
    if (output.push && namesOf(output).length === 0) throw new UsageError('pushing needs a name to push to: -t REF, or name= in --output');
    if (output.type === 'docker' && platforms.length > 1) {
      throw new UsageError(`${output.load ? '--load' : '--output type=docker'} holds one image, and --platform asks for ${platforms.length}: use type=oci (an index of them all), or one --platform`);
    }
  }
  const registry = registryOptions(values);
  const compression = layerCompression(outputs);
  const attest = parseAttestations(values, outputs.some((output) => output.push));
  const runDefaults = parseRunDefaults(values);
  const annotations = imageAnnotations(outputs, ((values.annotation as string[] | undefined) ?? []).flatMap(parseAnnotation), platforms.length > 1 || Boolean(attest.provenance || attest.sbom));
  if ((attest.provenance?.asked || attest.sbom) && !outputs.some((output) => output.type !== 'docker')) {
    throw new UsageError('--attest, --provenance and --sbom need an output that carries attestations: --push, -t, or --output type=oci|image|local|tar (type=docker holds none)');
  }

  const cacheFrom = ((values['cache-from'] as string[] | undefined) ?? []).map((spec) => parseCacheSpec(spec, 'cache-from'));
  const cacheTo = ((values['cache-to'] as string[] | undefined) ?? []).map((spec) => parseCacheSpec(spec, 'cache-to'));
  if (compression && compression.type !== 'gzip' && cacheTo.some((spec) => spec.gzipAsked)) {
    throw new UsageError(`--cache-to compression=gzip: this build makes its layers ${compression.type} (--output), and the cache holds layers as the build made them; leave compression= out of --cache-to`);
  }
  const secrets = await readSecrets((values.secret as string[] | undefined) ?? []);
  const ssh = new Map(((values.ssh as string[] | undefined) ?? []).map((spec) => {
    try {
      return parseSshSpec(spec);
    } catch (error) {
      throw new UsageError(`--ssh ${spec}: ${(error as Error).message}`);
    }
  }));
  const buildContexts = new Map<string, NamedContext>();
  for (const [name, value] of keyValues(values['build-context'], 'build-context')) {
    try {
      buildContexts.set(name, parseNamedContext(value, process.cwd()));
    } catch (error) {
      throw new UsageError(`--build-context ${name}=${value}: ${(error as Error).message}`);
    }
  }

  const store = await openStore(values.root);
  const contextWork = remoteContext ? await store.tempDir('context') : undefined;
  let view: Progress | undefined;
  try {
    const context = contextWork ? await materializeContext(contextArg, contextWork, { registry, stdin: () => process.stdin, secrets }) : undefined;
    const contextDir = context?.dir ?? resolve(contextArg);
    const fileOption = values.file as string | undefined;
    // A remote context's -f names a file in it; a local one's, a file from here.
    const dockerfilePath = fileOption === '-' || context?.dockerfile !== undefined ? undefined
      : fileOption === undefined ? resolve(contextDir, 'Dockerfile') : remoteContext ? join(contextDir, fileOption) : resolve(fileOption);
    // A remote context's Dockerfile is read only from inside it: a symlink may not lead to the host's files.
    if (context && dockerfilePath && existsSync(dockerfilePath) && !(await inside(contextDir, dockerfilePath))) {
      throw new UsageError(`the Dockerfile ${fileOption ?? 'Dockerfile'} of context ${context.source} leads out of it`);
    }
    let text: string;
    try {
      text = context?.dockerfile ?? (dockerfilePath === undefined ? await readStdin() : await readFile(dockerfilePath, 'utf8'));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const where = remoteContext ? `context ${context!.source}` : 'context';
      if (code === 'ENOENT' && fileOption === undefined) throw new UsageError(`no Dockerfile in the ${where}: looked for ${dockerfilePath}; name another file with -f PATH`);
      throw new UsageError(`cannot read the Dockerfile ${dockerfilePath}${code === 'ENOENT' ? `: there is no such file${remoteContext ? '' : ' (-f is relative to the current directory, not the context)'}` : `: ${(error as Error).message}`}`);
    }
    view = quiet ? undefined : progressView(progress);
    const shown = view;
    // hoist's own lines (warnings among them) bounded as its failures are: they may carry outside text.
    const log = shown ? (line: string) => shown.line(boundedLines(line)) : () => undefined;
    const buildArgs = keyValues(values['build-arg'], 'build-arg');
    // BuildKit's build checks: --call check runs only them; a build fails on them with
    // `# check=error=true`, and otherwise says what they found once it has pulled its bases
    // (whose ENV the undefined-variable rule reads), as BuildKit says it at the end.
    const dockerfileName = fileOption === '-' || context?.dockerfile !== undefined ? 'Dockerfile' : (fileOption ?? 'Dockerfile');
    const checks = await runChecks(store, text, dockerfileName, buildArgs);
    if (call === 'check' || (checks.error && checks.warnings.length > 0)) {
      const out = call === 'check' ? process.stdout : process.stderr;
      for (const warning of checks.warnings) out.write(`${boundedLines(checks.format(warning))}\n`);
      const count = checks.warnings.length;
      out.write(count === 0 ? 'Check complete, no warnings found.\n' : `Check complete, ${count} warning${count === 1 ? ' has' : 's have'} been found!\n`);
      if (count > 0 && call === 'build') throw new BuildError(`the build checks found ${count} warning${count === 1 ? '' : 's'}, and the Dockerfile says check=error=true`);
      return count === 0 ? 0 : 1;
    }
    const sources = [];
    for (const spec of cacheFrom) {
      const source = await importCache(store, spec, registry, log);
      if (source) sources.push(source);
    }
    const cache = new BuildCache(store, sources);
    // Reproducible builds: --timestamp, else SOURCE_DATE_EPOCH as a build arg (buildx) or in the environment.
    const epochText = (values.timestamp as string | undefined) ?? buildArgs.get('SOURCE_DATE_EPOCH') ?? process.env.SOURCE_DATE_EPOCH;
    if (epochText !== undefined && epochText !== '' && !/^\d+$/.test(epochText)) throw new UsageError(`timestamp ${epochText}: expected whole seconds since the epoch`);
    const host = await detectHost(isolation === 'auto' ? undefined : isolation as IsolationMode);
    // How RUN steps are isolated, said once, before the build's first line (a Dockerfile that does
    // not parse has none).
    let announced = false;
    const buildLog = (line: string): void => {
      if (!announced) log(host.isolation.summary);
      announced = true;
      log(line);
    };
    // What the build reads and writes besides the store: with --isolation=container, kept out of the image's way.
    const keep = [
      contextDir, dockerfilePath, values['tls-ca'], values.iidfile, values['metadata-file'], ...outputs.map((output) => output.dest),
      ...[...cacheFrom, ...cacheTo].filter((spec) => spec.type === 'local').map((spec) => spec.where),
      ...[...buildContexts.values()].map((named) => ('path' in named ? named.path : undefined)),
    ].filter((path): path is string => typeof path === 'string' && path !== '-').map((path) => resolve(path));
    // Several platforms: one build each, at the same time, sharing the stage limit and the cache;
    // their lines say which platform they are of. One failing stops the others, and the first
    // failure is reported once they have all ended.
    const limit = pLimit(jobs ?? Infinity);
    const stop = new AbortController();
    const startedOn = new Date();
    // The images each platform's build used from outside it, for its provenance.
    const used = (platforms.length > 0 ? platforms : [undefined]).map(() => new Map<string, UsedImage>());
    let failure: unknown;
    const builds = await Promise.allSettled((platforms.length > 0 ? platforms : [undefined]).map((platform, i) => build({
      store, host, contextDir, log: buildLog, output: shown && ((chunk: Buffer) => shown.chunk(chunk)), limit,
      pull: values.pull === true, registry,
      dockerfile: { text, name: fileOption === '-' ? 'Dockerfile' : (fileOption ?? 'Dockerfile'), ...(dockerfilePath ? { path: dockerfilePath } : {}) },
      buildArgs, target: values.target as string | undefined,
      labels: Object.fromEntries(keyValues(values.label, 'label')), ...(platform ? { platform } : {}), ...(platforms.length > 1 ? { label: formatPlatform(platform!) } : {}),
      ...(epochText ? { timestamp: Number(epochText) } : {}),
      noCache: values['no-cache'] === true, secrets, ssh, cache, buildContexts, keep, ...(compression ? { compression } : {}),
      noCacheStages: ((values['no-cache-filter'] as string[] | undefined) ?? []).flatMap((list) => list.split(',')).filter(Boolean),
      signal: stop.signal, used: (image) => used[i]!.set(`${image.name}@${image.digest}`, image), runDefaults,
    }).then((image) => (compression?.force ? recompressed(store, image, compression) : image)).catch((error: unknown) => {
      failure ??= error;
      stop.abort();
      throw error;
    }))).finally(() => shown?.end());
    if (failure !== undefined) throw failure;
    const finishedOn = new Date();
    for (const warning of (await runChecks(store, text, dockerfileName, buildArgs)).warnings) {
      log(`warning: ${warning.rule}: ${warning.message} (${dockerfileName}:${warning.line}) ${warning.url}`);
    }
    const built = builds.map((settled) => (settled as PromiseFulfilledResult<Image>).value);
    const annotationsAt = (level: AnnotationLevel, platform?: Platform): Record<string, string> | undefined => {
      const chosen = annotations.filter((each) => each.level === level && (!each.platform || (platform && platformMatches(platform, each.platform))));
      return chosen.length > 0 ? Object.fromEntries(chosen.map(({ key, value }) => [key, value])) : undefined;
    };
    // The manifest annotations asked for make each image's manifest anew (its config and layers stay).
    const images = await Promise.all(built.map(async (image, i) => {
      const platform = platforms[i] ?? { os: image.config.os, architecture: image.config.architecture, ...(image.config.variant ? { variant: image.config.variant } : {}) };
      const added = annotationsAt('manifest', platform);
      return { image: added ? await writeImage(store, image.config, image.layers, { ...image.manifest.annotations, ...added }) : image, platform };
    }));
    const named = [...new Set(outputs.flatMap(namesOf))];
    const statements = await attestImages(store, images, named, attest, {
      used, contextDir,
      request: {
        startedOn, finishedOn, secretIds: [...secrets.keys()], buildArgs, labels: Object.fromEntries(keyValues(values.label, 'label')),
        dockerfile: { name: fileOption === '-' ? 'Dockerfile' : basename(fileOption ?? 'Dockerfile'), text }, target: values.target as string | undefined,
      },
    }, log);
    if (statements.length > 0) log(`attested ${statements[0]!.map(({ predicateType }) => predicateType).join(' and ')} of ${images.length === 1 ? 'the image' : `each of ${images.length} images`}`);
    // One image is the result as it is; several, or any with attestations, are an OCI index of them.
    const attestations: Descriptor[] = [];
    for (const [i, layers] of statements.entries()) attestations.push(await writeAttestations(store, images[i]!.image.descriptor, layers));
    const result = images.length === 1 && attestations.length === 0
      ? images[0]!.image.descriptor
      : await writeIndex(store, images.map(({ image, platform }) => ({ descriptor: image.descriptor, platform, annotations: annotationsAt('manifest-descriptor', platform) })), attestations, annotationsAt('index'));

    const created = built[0]!.config.created ?? new Date().toISOString();
    const mtime = Math.floor(Date.parse(created) / 1000);
    // type=local and type=tar: a directory per platform when there are several, named as buildx names them.
    // Each file system gets the attestations asked for (and not inline-only) as files too, named as BuildKit names them.
    const filesystems = images.map(({ image, platform }, i) => ({
      image, dir: images.length > 1 ? formatPlatform(platform).replaceAll('/', '_') : '', files: attestationFiles(statements[i] ?? [], attest),
    }));
    for (const output of outputs) {
      const names = namesOf(output);
      if (output.type === 'image') for (const name of names) await store.tag(name, result);
      if (output.type === 'oci') await writeOciLayout(store, [{ descriptor: result, refs: names, annotations: annotationsAt('index-descriptor') }], destination(output), { tar: output.tar, created, mtime });
      if (output.type === 'docker') {
        const write = (dest: string | Writable): Promise<void> => writeDockerArchive(store, [{ image: built[0]!, refs: names }], dest, { mtime });
        await (output.load ? loadInto(output.load, write, log) : write(destination(output)));
      }
      if (output.type === 'docker' && attestations.length > 0) log('note: the type=docker archive holds the image without its attestations (docker load keeps none)');
      if (output.type === 'local') {
        for (const { image, dir, files } of filesystems) {
          await applyLayers(store, image.layers, join(output.dest!, dir), { warn: log, asRoot: host.root });
          await writeFiles(join(output.dest!, dir), files);
        }
      }
      if (output.type === 'tar') await exportFilesystems(store, filesystems, destination(output), { warn: log, asRoot: host.root });
      if (output.type !== 'image' || names.length > 0) log(`exported ${output.type}${output.dest ? ` to ${output.dest}` : output.load ? ` into ${basename(output.load)} load` : ''}`);
      if (output.push) for (const name of names) await pushAndReport(store, result, name, registry, log);
    }
    for (const spec of cacheTo) {
      await exportCache(store, cache, spec, registry, log).catch((error: Error) => {
        if (!spec.ignoreError) throw error;
        log(`warning: the cache was not exported (ignore-error=true): ${error.message}`);
      });
    }
    if (outputs.length === 0) log('warning: no output specified: the image is in the store, unnamed (use -t or --output)');
    // An image's ID is its config's digest; an index has no config, and buildx gives its digest.
    const id = images.length === 1 ? built[0]!.manifest.config.digest : result.digest;
    if (values.iidfile) await writeResult(values.iidfile as string, id);
    if (values['metadata-file']) {
      await writeResult(values['metadata-file'] as string, JSON.stringify({
        'containerimage.digest': result.digest,
        ...(images.length === 1 ? { 'containerimage.config.digest': built[0]!.manifest.config.digest } : {}),
        'containerimage.descriptor': result,
        ...(outputs.some((output) => namesOf(output).length > 0) ? { 'image.name': [...new Set(outputs.flatMap(namesOf))].join(',') } : {}),
      }, null, 2));
    }
    const what = images.length > 1 ? ` (${platforms.map(formatPlatform).join(', ')})` : '';
    (toStdout > 0 ? process.stderr : process.stdout).write(`${quiet ? id : `built ${result.digest}${what}${tags.length ? ` as ${tags.map((t) => familiarReference(parseReference(t))).join(', ')}` : ''}`}\n`);
    return 0;
  } finally {
    view?.end();
    if (contextWork) await rm(contextWork, { recursive: true, force: true });
  }
}

/**
 * How the build's lines are shown: --progress rawjson; in GitHub Actions, plain lines in a group a
 * stage; tty where standard error is a terminal (else plain, as buildx falls back), and auto there.
 */
function progressView(mode: string): Progress {
  const write = (text: string): void => void process.stderr.write(text);
  if (mode === 'rawjson') return rawJsonProgress(write);
  if (inGithubActions()) return new StageGroups(write);
  if (process.stderr.isTTY && (mode === 'tty' || mode === 'auto')) return ttyProgress(write, () => process.stderr.columns || 80);
  return { line: (text) => write(`${text}\n`), chunk: (chunk) => void process.stderr.write(chunk), end: () => undefined };
}

async function writeFiles(dir: string, files: { name: string; content: Buffer }[]): Promise<void> {
  if (files.length > 0) await mkdir(dir, { recursive: true });
  for (const { name, content } of files) await writeFile(join(dir, name), content);
}

/**
 * The images' file systems as one tarball (`type=tar`): each one's layers applied to a directory
 * of a temp dir (its `dir`, or the top for a single image), with its attestation files, then read back.
 */
async function exportFilesystems(store: Store, filesystems: { image: Image; dir: string; files: { name: string; content: Buffer }[] }[], dest: string | Writable, options: { warn: (line: string) => void; asRoot: boolean }): Promise<void> {
  const temp = await store.tempDir('tar');
  try {
    const root = join(temp, 'root');
    for (const { image, dir, files } of filesystems) {
      await applyLayers(store, image.layers, join(root, dir), options);
      await writeFiles(join(root, dir), files);
    }
    await writeFilesystemTar(changedEntries(root, new Map(), { xattrs: new Map(), warn: options.warn }), dest);
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
}
