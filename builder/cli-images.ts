// The commands besides build: on images (push, pull, images, inspect, save, rmi, prune, load) and on registry logins.
import { resolve } from 'node:path';
import { hostPlatform, parsePlatform } from '../parser/index.ts';
import { pull, pullIndex, push, pushIndex, RegistryClient, removeCredentials, saveCredentials, type ClientOptions } from '../registry/index.ts';
import { familiarReference, INDEX_TYPES, familiarRepository, importOciLayout, Layout, normalizeReference, parseReference, parseSize, prune, readImage, REF_NAME, Store, writeDockerArchive, writeOciLayout, type BlobSource, type Descriptor, type Image } from '../layers/index.ts';
import { BuildError } from './errors.ts';
import { parseNamedContext } from './images.ts';
import { parse, openStore, readStdin, REGISTRY_FLAGS, registryOptions } from './cli-options.ts';
import { UsageError } from './errors.ts';
import { help } from './cli-help.ts';

/** Pushes an image, or each platform of an index and then the index, to `name`; says what went up. */
export async function pushAndReport(from: BlobSource, descriptor: Descriptor, name: string, registry: ClientOptions, log: (line: string) => void): Promise<string> {
  const ref = parseReference(name);
  const client = new RegistryClient(ref.domain, registry);
  if (INDEX_TYPES.includes(descriptor.mediaType)) {
    const result = await pushIndex(from, descriptor, ref, client);
    const mounted = result.mounted > 0 ? `, ${result.mounted} mounted from another repository` : '';
    log(`pushed ${familiarReference(ref)}@${result.digest} (an index: ${result.uploaded} blobs uploaded${mounted})`);
    return result.digest;
  }
  const image = await readImage(from, descriptor);
  const result = await push(from, image, ref, client);
  const mounted = result.mounted > 0 ? `, ${result.mounted} mounted from another repository` : '';
  log(`pushed ${familiarReference(ref)}@${result.digest} (${result.uploaded} of ${image.manifest.layers.length + 1} blobs uploaded${mounted})`);
  return result.digest;
}

export async function pushCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse('push', args, REGISTRY_FLAGS);
  if (values.help) return help('push');
  if (positionals.length < 1 || positionals.length > 2) throw new UsageError("push takes REF [DEST] (see 'hoist push --help')");
  const [source, target] = positionals as [string, string | undefined];
  const layout = source.startsWith('oci-layout://') ? parseNamedContext(source, process.cwd()) : undefined;
  if (layout && !target) throw new UsageError('pushing from an oci-layout:// source needs a DEST');
  // An image in an OCI layout or tarball (hoist save, a USB stick) goes up straight from it, each
  // blob checked against its digest as it is read; the store is not used.
  const { from, descriptor } = layout?.kind === 'layout'
    ? await layoutImage(source, layout.path, layout.select)
    : await openStore(values.root).then(async (store) => ({ from: store, ...(await imageByName(store, source)) }));
  const dest = normalizeReference(target ?? source);
  const log = (line: string): void => void process.stderr.write(`${line}\n`);
  process.stdout.write(`${await pushAndReport(from, descriptor, dest, registryOptions(values), log)}\n`);
  return 0;
}

/** The one image an OCI layout holds (or the one `select` names), read in place. */
async function layoutImage(source: string, path: string, select: string | undefined): Promise<{ from: Layout; descriptor: Descriptor; image: Image }> {
  const layout = await Layout.open(path);
  const chosen = layout.select(select);
  if (chosen.length > 1) throw new UsageError(`${source} holds ${chosen.length} images: name one with :TAG or @DIGEST`);
  return { from: layout, descriptor: chosen[0]!, image: await readImage(layout, chosen[0]!) };
}

export async function pullCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse('pull', args, { platform: { type: 'string' }, 'all-platforms': { type: 'boolean' }, ...REGISTRY_FLAGS });
  if (values.help) return help('pull');
  if (positionals.length !== 1) throw new UsageError("pull takes one REF (see 'hoist pull --help')");
  const store = await openStore(values.root);
  const name = normalizeReference(positionals[0]!);
  const ref = parseReference(name);
  const client = new RegistryClient(ref.domain, registryOptions(values));
  if (values['all-platforms'] && values.platform) throw new UsageError('--all-platforms and --platform cannot go together');
  const platform = values.platform ? parsePlatform(values.platform as string) : hostPlatform();
  const descriptor = values['all-platforms'] ? await pullIndex(store, ref, client) : (await pull(store, ref, platform, client)).descriptor;
  if (!ref.digest) await store.tag(name, descriptor);
  process.stdout.write(`${descriptor.digest}\n`);
  return 0;
}

/** The registry a login names: `ghcr.io`, `https://registry.example:5000/`, or `docker.io`. */
const registryHost = (text: string): string => parseReference(`${text.replace(/^https?:\/\//, '').replace(/\/+$/, '')}/x`).domain;

export async function loginCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse('login', args, {
    username: { type: 'string', short: 'u' }, password: { type: 'string', short: 'p' }, 'password-stdin': { type: 'boolean' }, ...REGISTRY_FLAGS,
  });
  if (values.help) return help('login');
  if (positionals.length !== 1) throw new UsageError("login takes one REGISTRY (see 'hoist login --help')");
  const username = values.username as string | undefined;
  if (!username) throw new UsageError('login needs --username');
  if (values.password !== undefined && values['password-stdin']) throw new UsageError('--password and --password-stdin cannot go together');
  if (values.password !== undefined) process.stderr.write('hoist: warning: --password puts the secret in your shell history and the process list: prefer --password-stdin\n');
  const password = values['password-stdin'] ? (await readStdin()).replace(/\r?\n$/, '') : (values.password as string | undefined);
  if (!password) throw new UsageError('login needs a password: --password-stdin (or --password)');
  const host = registryHost(positionals[0]!);
  const credentials = { username, password };
  await new RegistryClient(host, { ...registryOptions(values), credentials }).checkLogin();
  const file = await saveCredentials(host, credentials);
  process.stdout.write(`Login Succeeded (credentials for ${host} saved in ${file})\n`);
  return 0;
}

export async function logoutCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse('logout', args, {});
  if (values.help) return help('logout');
  if (positionals.length !== 1) throw new UsageError("logout takes one REGISTRY (see 'hoist logout --help')");
  const host = registryHost(positionals[0]!);
  process.stdout.write(await removeCredentials(host) ? `Removing login credentials for ${host}\n` : `Not logged in to ${host}\n`);
  return 0;
}

export async function imagesCommand(args: string[]): Promise<number> {
  const { values } = parse('images', args, {});
  if (values.help) return help('images');
  const store = await openStore(values.root);
  const rows = [['REPOSITORY', 'TAG', 'IMAGE ID', 'CREATED', 'SIZE']];
  for (const descriptor of await store.listTags()) {
    const ref = parseReference(descriptor.annotations![REF_NAME]!);
    const image = await readImage(store, descriptor);
    const size = image.layers.reduce((sum, layer) => sum + layer.size, 0);
    const repository = familiarRepository(ref);
    rows.push([repository, ref.tag ?? '<none>', image.manifest.config.digest.slice(7, 19), image.config.created ?? '', formatSize(size)]);
  }
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  for (const row of rows) process.stdout.write(`${row.map((cell, i) => cell.padEnd(widths[i]!)).join('   ').trimEnd()}\n`);
  return 0;
}

function formatSize(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) [value, unit] = [value / 1000, unit + 1];
  return `${unit === 0 ? value : value.toFixed(1)}${units[unit]}`;
}

/** A named image: its full ref, what the name points to (a manifest, or an index), and the image (the first platform of an index). */
async function imageByName(store: Store, name: string): Promise<{ ref: string; descriptor: Descriptor; image: Image }> {
  let ref: string;
  try {
    ref = normalizeReference(name);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const descriptor = await store.resolve(ref);
  if (!descriptor) throw new BuildError(`no image named ${name} in the store (${store.root})`);
  return { ref, descriptor, image: await readImage(store, descriptor) };
}

export async function inspectCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse('inspect', args, {});
  if (values.help) return help('inspect');
  if (positionals.length !== 1) throw new UsageError("inspect takes one REF (see 'hoist inspect --help')");
  const store = await openStore(values.root);
  const { ref, image } = await imageByName(store, positionals[0]!);
  process.stdout.write(`${JSON.stringify({ Name: ref, Digest: image.descriptor.digest, Id: image.manifest.config.digest, Manifest: image.manifest, Config: image.config }, null, 2)}\n`);
  return 0;
}

export async function saveCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse('save', args, { output: { type: 'string', short: 'o' }, format: { type: 'string' } });
  if (values.help) return help('save');
  if (positionals.length === 0) throw new UsageError("save needs at least one REF (see 'hoist save --help')");
  if (!values.output) throw new UsageError('save needs -o FILE');
  const format = (values.format as string | undefined) ?? 'oci';
  if (format !== 'oci' && format !== 'docker') throw new UsageError(`--format ${format}: use oci or docker`);
  const store = await openStore(values.root);
  const named = await Promise.all(positionals.map(async (name) => {
    const { ref, image, descriptor } = await imageByName(store, name);
    return { image, descriptor, refs: [ref] };
  }));
  const created = named[0]!.image.config.created ?? new Date().toISOString();
  const mtime = Math.floor(Date.parse(created) / 1000);
  const dest = resolve(values.output as string);
  // An OCI tarball keeps what each name points to, all platforms of an index; docker's format holds one.
  if (format === 'oci') await writeOciLayout(store, named, dest, { tar: true, created, mtime });
  else await writeDockerArchive(store, named, dest, { mtime });
  return 0;
}

export async function rmiCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse('rmi', args, {});
  if (values.help) return help('rmi');
  if (positionals.length === 0) throw new UsageError("rmi needs at least one REF (see 'hoist rmi --help')");
  const store = await openStore(values.root);
  let status = 0;
  for (const name of positionals) {
    if (await store.untag(normalizeReference(name))) process.stdout.write(`Untagged: ${name}\n`);
    else {
      process.stderr.write(`hoist: no image named ${name}\n`);
      status = 1;
    }
  }
  return status;
}

export async function pruneCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse('prune', args, { all: { type: 'boolean' }, 'keep-storage': { type: 'string' } });
  if (values.help) return help('prune');
  if (positionals.length > 0) throw new UsageError("prune takes no arguments (see 'hoist prune --help')");
  const keepText = values['keep-storage'] as string | undefined;
  const keepStorage = keepText === undefined ? undefined : parseSize(keepText);
  if (keepText !== undefined && keepStorage === undefined) throw new UsageError(`--keep-storage ${keepText}: expected a size such as 10GB, 512MB, 1.5GiB or bytes`);
  const store = await openStore(values.root);
  const { blobs, records, rootfsDirs, cacheMounts } = await prune(store, { all: values.all === true, ...(keepStorage !== undefined ? { keepStorage } : {}) });
  const counted = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;
  const freed = blobs.bytes + records.bytes + rootfsDirs.bytes + cacheMounts.bytes;
  process.stdout.write(`removed ${counted(blobs.count, 'blob')}, ${counted(records.count, 'cache record')}, ${counted(rootfsDirs.count, 'rootfs dir')}, `
    + `${counted(cacheMounts.count, 'cache mount')}: ${formatSize(freed)} freed\n`);
  return 0;
}

export async function loadCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse('load', args, { tag: { type: 'string', short: 't' } });
  if (values.help) return help('load');
  if (positionals.length !== 1) throw new UsageError("load takes one PATH (see 'hoist load --help')");
  const [, path = '', tag] = /^(.*?)(?::([\w][\w.-]*))?$/.exec(positionals[0]!)!;
  const store = await openStore(values.root);
  const imported = await importOciLayout(store, resolve(path), tag);
  const name = values.tag as string | undefined;
  if (name !== undefined && imported.length > 1) throw new UsageError(`${path} holds ${imported.length} images: pick one with ${path}:TAG to name it`);
  for (const { descriptor, name: given } of imported) {
    const ref = name ?? given;
    if (ref === undefined) throw new UsageError(`the image in ${path} has no name: give one with -t NAME`);
    // The name points at what the layout lists: every platform of an index stays available.
    await store.tag(normalizeReference(ref), descriptor);
    process.stdout.write(`Loaded image: ${familiarReference(parseReference(normalizeReference(ref)))}\n`);
  }
  return 0;
}
