// The packages an image's own databases record, read from those files' contents: dpkg, apk,
// Python's dist-info, npm's package.json and package-lock.json, and Go's build info in binaries.
// Each cataloger makes its packages through a Catalog, which guards each package on its own.
import { posix } from 'node:path';
import { PackageURL } from 'packageurl-js';
import { excerpt, isRecord } from '../layers/index.ts';

export interface Package {
  name: string;
  /** Empty when the database records none (a Go main module built outside module mode). */
  version: string;
  purl: string;
  /** The licences as the database records them. */
  licenses: string[];
  /** The files the database says the package owns, absolute, as it records them. */
  files: string[];
  /** The file it was found in: a database, a package.json, a binary. */
  foundIn: string;
}

/**
 * Where the catalogers put the packages they find. Each package is made inside one guard: a record
 * that throws (a version packageurl-js refuses, a field of an odd kind) is left out, named in
 * `skipped`, and the rest are kept. No more than `limit` packages are made in all, however the
 * image lays out its databases.
 */
export class Catalog {
  /** What was left out, and why. */
  readonly skipped: string[] = [];
  private readonly limit: number;
  private made = 0;
  private full = false;

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Whether no more packages are made: a cataloger need not read further. */
  get isFull(): boolean {
    return this.full;
  }

  /** The package `make` makes of each record (undefined: the record is no package); `describe` names a record in a warning. */
  each<T>(records: Iterable<T>, describe: (record: T) => string, make: (record: T) => Package | undefined): Package[] {
    const made: Package[] = [];
    for (const record of records) {
      if (this.made >= this.limit) {
        if (!this.full) this.skipped.push(`packages past the first ${this.limit}, from ${describe(record)} on`);
        this.full = true;
        break;
      }
      try {
        const pkg = make(record);
        if (pkg) {
          made.push(pkg);
          this.made++;
        }
      } catch (error) {
        this.skipped.push(`${describe(record)} (${excerpt(error instanceof Error ? error.message : String(error))})`);
      }
    }
    return made;
  }
}

/** A package URL of these parts, as packageurl-js writes it; an error that names the type where it refuses them (its own messages can be its bugs). */
function packageUrl(type: string, namespace: string | undefined, name: string, version: string | undefined, qualifiers: Record<string, string> | undefined): string {
  try {
    return new PackageURL(type, namespace, name, version, qualifiers).toString();
  } catch {
    throw new Error(`packageurl-js refuses it as a ${type} package URL`);
  }
}

/** A name or version from a database as a warning shows it. */
const shown = (text: string): string => excerpt(text, 80) || '(blank)';

export interface Distro {
  id: string;
  versionId?: string;
}

/** ID and VERSION_ID from an os-release file. */
export function parseOsRelease(text: string): Distro | undefined {
  const fields = new Map(text.split('\n').map((line) => /^([A-Z_]+)=(["']?)(.*)\2$/.exec(line.trim())).filter((match) => match !== null).map((match) => [match[1]!, match[3]!]));
  const id = fields.get('ID');
  return id ? { id, ...(fields.get('VERSION_ID') ? { versionId: fields.get('VERSION_ID') } : {}) } : undefined;
}

const distroQualifier = (distro: Distro | undefined): Record<string, string> =>
  (distro ? { distro: distro.versionId ? `${distro.id}-${distro.versionId}` : distro.id } : {});

/** The blocks of `text` between blank lines, one at a time: a catalog that is full reads no further. */
function* blocks(text: string): Generator<string> {
  for (let at = 0; at < text.length;) {
    const end = text.indexOf('\n\n', at);
    const block = text.slice(at, end < 0 ? text.length : end);
    if (block.trim() !== '') yield block;
    at = end < 0 ? text.length : end + 2;
  }
}

/** A Debian-style control paragraph (dpkg's status): fields by name, continuation lines joined. */
function paragraph(block: string): Map<string, string> {
  const fields = new Map<string, string>();
  let last: string | undefined;
  for (const line of block.split('\n')) {
    if (/^[ \t]/.test(line) && last) fields.set(last, `${fields.get(last)}\n${line.trim()}`);
    const match = /^([^\s:]+):\s?(.*)$/.exec(line);
    if (match && !/^[ \t]/.test(line)) fields.set((last = match[1]!), match[2]!);
  }
  return fields;
}

/**
 * dpkg's installed packages from a status file (or a distroless status.d file); `listOf` gives a
 * package's .list file, `copyrightOf` its /usr/share/doc copyright file, when the image has them.
 */
export function dpkgPackages(catalog: Catalog, status: string, foundIn: string, distro: Distro | undefined, listOf: (name: string, arch: string) => string | undefined, copyrightOf: (name: string) => string | undefined): Package[] {
  const described = (block: string): string => `dpkg package ${shown(/^Package:(.*)$/m.exec(block)?.[1] ?? '?')} in ${foundIn}`;
  return catalog.each(blocks(status), described, (block) => {
    const fields = paragraph(block);
    const name = fields.get('Package');
    if (!name || !(fields.get('Status') ?? 'install ok installed').endsWith(' installed')) return undefined;
    const version = fields.get('Version') ?? '';
    const arch = fields.get('Architecture') ?? '';
    const files = (listOf(name, arch) ?? '').split('\n').filter((path) => path.startsWith('/') && path !== '/.');
    const copyright = copyrightOf(name);
    const licenses = copyright ? [...new Set([...copyright.matchAll(/^License:[ \t]*(\S[^\n]*)$/gm)].map((match) => match[1]!.trim()))] : [];
    const purl = packageUrl('deb', distro?.id ?? 'debian', name, version, { ...(arch ? { arch } : {}), ...distroQualifier(distro) });
    return { name, version, purl, licenses, files, foundIn };
  });
}

/** apk's installed database: P name, V version, A arch, L licence, F a directory and R its files. */
export function apkPackages(catalog: Catalog, installed: string, foundIn: string, distro: Distro | undefined): Package[] {
  const described = (block: string): string => `apk package ${shown(/^P:(.*)$/m.exec(block)?.[1] ?? '?')} in ${foundIn}`;
  return catalog.each(blocks(installed), described, (block) => {
    let name = '', version = '', arch = '', license = '', dir = '';
    const files: string[] = [];
    for (const line of block.split('\n')) {
      const [key, value] = [line.slice(0, 1), line.slice(2)];
      if (key === 'P') name = value;
      if (key === 'V') version = value;
      if (key === 'A') arch = value;
      if (key === 'L') license = value;
      if (key === 'F') dir = value;
      if (key === 'R') files.push(`/${dir ? `${dir}/` : ''}${value}`);
    }
    if (!name) return undefined;
    const purl = packageUrl('apk', distro?.id ?? 'alpine', name, version, { ...(arch ? { arch } : {}), ...distroQualifier(distro) });
    return { name, version, purl, licenses: license ? [license] : [], files, foundIn };
  });
}

/** A Python distribution from its dist-info METADATA (and RECORD, which lists its files relative to site-packages, CSV). */
export function pythonPackage(catalog: Catalog, metadataPath: string, metadata: string, record: string | undefined): Package[] {
  return catalog.each([metadata], () => `the Python package of ${metadataPath}`, () => {
    const header = metadata.split(/\r?\n\r?\n/)[0]!;
    const field = (name: string): string | undefined => new RegExp(`^${name}:[ \\t]*([^\\n]*)$`, 'mi').exec(header)?.[1]?.trim();
    const name = field('Name');
    const version = field('Version') ?? '';
    if (!name) return undefined;
    const license = field('License-Expression') ?? field('License');
    const sitePackages = posix.dirname(posix.dirname(metadataPath));
    const firstField = (line: string): string => (line.startsWith('"') ? /^"((?:[^"]|"")*)"/.exec(line)?.[1]?.replaceAll('""', '"') ?? '' : line.split(',')[0]!).trim();
    const files = (record ?? '').split('\n').map(firstField).filter(Boolean).map((path) => posix.join(sitePackages, path));
    // PyPI's names are compared normalized: lower case, runs of -_. as one dash.
    const purl = packageUrl('pypi', undefined, name.toLowerCase().replace(/[-_.]+/g, '-'), version, undefined);
    return { name, version, purl, licenses: license && license !== 'UNKNOWN' ? [license] : [], files, foundIn: metadataPath };
  });
}

const npmPurl = (name: string, version: string): string => {
  const slash = name.startsWith('@') ? name.indexOf('/') : -1;
  return packageUrl('npm', slash < 0 ? undefined : name.slice(0, slash), name.slice(slash + 1), version || undefined, undefined);
};

const npmLicenses = (value: Record<string, unknown>): string[] => {
  if (typeof value.license === 'string') return [value.license];
  if (isRecord(value.license) && typeof value.license.type === 'string') return [value.license.type];
  if (Array.isArray(value.licenses)) return value.licenses.map((each: unknown) => (isRecord(each) ? each.type : undefined)).filter((type): type is string => typeof type === 'string');
  return [];
};

/** An npm name as a package URL takes it: a name, after a scope if it has one. */
const NPM_NAME = /^(@[^/]+\/)?[^/@][^/]*$/;

/** An installed npm package from its node_modules/NAME/package.json. */
export function npmPackage(catalog: Catalog, path: string, text: string): Package[] {
  const json: unknown = JSON.parse(text);
  if (!isRecord(json) || typeof json.name !== 'string' || !NPM_NAME.test(json.name) || typeof json.version !== 'string') return [];
  const { name, version } = json;
  return catalog.each([json], () => `npm package ${shown(name)} ${shown(version)} in ${path}`,
    () => ({ name, version, purl: npmPurl(name, version), licenses: npmLicenses(json), files: [], foundIn: path }));
}

/** The packages a package-lock.json pins (lockfile v2 and v3's `packages`, v1's `dependencies`), except those whose package URL is in `installed`. */
export function npmLockPackages(catalog: Catalog, path: string, text: string, installed: Set<string>): Package[] {
  const json: unknown = JSON.parse(text);
  if (!isRecord(json)) return [];
  const pinned: { name: string; version: string; entry: Record<string, unknown> }[] = [];
  const add = (name: string, entry: unknown): void => {
    if (isRecord(entry) && NPM_NAME.test(name) && typeof entry.version === 'string' && !entry.link) pinned.push({ name, version: entry.version, entry });
  };
  if (isRecord(json.packages)) {
    for (const [key, entry] of Object.entries(json.packages)) {
      const at = key.lastIndexOf('node_modules/');
      if (at >= 0) add(isRecord(entry) && typeof entry.name === 'string' ? entry.name : key.slice(at + 'node_modules/'.length), entry);
    }
  } else {
    // Lockfile v1 nests dependencies in dependencies: walked without recursion, however deep.
    const pending = [json.dependencies];
    while (pending.length > 0) {
      const dependencies = pending.pop();
      if (!isRecord(dependencies)) continue;
      for (const [name, entry] of Object.entries(dependencies)) {
        add(name, entry);
        if (isRecord(entry)) pending.push(entry.dependencies);
      }
    }
  }
  return catalog.each(pinned, ({ name, version }) => `npm package ${shown(name)} ${shown(version)} in ${path}`, ({ name, version, entry }) => {
    const purl = npmPurl(name, version);
    return installed.has(purl) ? undefined : { name, version, purl, licenses: npmLicenses(entry), files: [], foundIn: path };
  });
}

/** Where Go 1.18 and later keep a binary's build info: this magic, then the Go version and module info as length-prefixed strings. */
export const GO_BUILDINFO_MAGIC = Buffer.from('\xff Go buildinf:', 'latin1');

/** A binary's build info: its Go version (`go1.21.5`) and module lines, as `go version -m` prints them. */
export interface GoBuildInfo {
  go: string;
  modules: string;
}

/** Reads varint-prefixed bytes at `at`: them, and where the next ones start. */
function lengthPrefixed(bytes: Buffer, at: number): [Buffer, number] | undefined {
  let length = 0;
  for (let scale = 1; at < bytes.length && scale < 2 ** 35; scale *= 128) {
    const byte = bytes[at++]!;
    length += (byte & 0x7f) * scale;
    if (byte < 0x80) return at + length <= bytes.length ? [bytes.subarray(at, at + length), at + length] : undefined;
  }
  return undefined;
}

/**
 * The build info at the magic's offset (`info` starts there), if all of it is in `info`. Binaries of
 * Go before 1.18 keep pointers instead of strings there and give none.
 */
export function goBuildInfo(info: Buffer): GoBuildInfo | undefined {
  if (info.length < 32 || (info[15]! & 2) === 0) return undefined;
  const version = lengthPrefixed(info, 32);
  const modinfo = version && lengthPrefixed(info, version[1]);
  if (!version || !modinfo) return undefined;
  // The module info sits between two 16-byte sentinels.
  const modules = (modinfo[0].length >= 33 && modinfo[0][modinfo[0].length - 17] === 0x0a ? modinfo[0].subarray(16, -16) : modinfo[0]).toString('utf8');
  return { go: version[0].toString('utf8'), modules };
}

/** The modules a Go binary was built from, by its build info: the main module, its dependencies (with replacements) and the standard library. */
export function goModules(catalog: Catalog, binary: string, info: GoBuildInfo): Package[] {
  if (catalog.isFull) return [];
  const modules: { path: string; version: string }[] = [];
  for (const line of info.modules.split('\n')) {
    const [kind, path = '', moduleVersion = ''] = line.split('\t');
    if (kind === 'path' && modules.length === 0) modules.push({ path, version: '' });
    if (kind === 'mod') modules[0] = { path, version: moduleVersion === '(devel)' ? '' : moduleVersion };
    if (kind === 'dep') modules.push({ path, version: moduleVersion });
    if (kind === '=>' && modules.length > 1) modules[modules.length - 1] = { path, version: moduleVersion };
  }
  modules.push({ path: 'stdlib', version: info.go.replace(/^go/, '') });
  const described = ({ path, version }: { path: string; version: string }): string => `Go module ${shown(path)}${version ? ` ${shown(version)}` : ''} in ${binary}`;
  return catalog.each(modules, described, ({ path, version }) => {
    if (!/^[^/]+(\/[^/]+)*$/.test(path)) return undefined;
    const slash = path.lastIndexOf('/');
    const purl = packageUrl('golang', slash < 0 ? undefined : path.slice(0, slash), path.slice(slash + 1), version || undefined, undefined);
    return { name: path, version, purl, licenses: [], files: [], foundIn: binary };
  });
}
