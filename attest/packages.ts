// The packages an image's own databases record, read from those files' contents: dpkg, apk,
// Python's dist-info, npm's package.json and package-lock.json, and Go's build info in binaries.
import { posix } from 'node:path';
import { PackageURL } from 'packageurl-js';
import { isRecord } from '../layers/index.ts';

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

/** Debian-style control paragraphs (dpkg's status, apk's installed): fields by name, continuation lines joined. */
function paragraphs(text: string, separator: RegExp): Map<string, string>[] {
  return text.split(separator).filter((block) => block.trim() !== '').map((block) => {
    const fields = new Map<string, string>();
    let last: string | undefined;
    for (const line of block.split('\n')) {
      if (/^[ \t]/.test(line) && last) fields.set(last, `${fields.get(last)}\n${line.trim()}`);
      const match = /^([^\s:]+):\s?(.*)$/.exec(line);
      if (match && !/^[ \t]/.test(line)) fields.set((last = match[1]!), match[2]!);
    }
    return fields;
  });
}

/**
 * dpkg's installed packages from a status file (or a distroless status.d file); `listOf` gives a
 * package's .list file, `copyrightOf` its /usr/share/doc copyright file, when the image has them.
 */
export function dpkgPackages(status: string, foundIn: string, distro: Distro | undefined, listOf: (name: string, arch: string) => string | undefined, copyrightOf: (name: string) => string | undefined): Package[] {
  return paragraphs(status, /\n\n+/).filter((fields) => fields.get('Package') && (fields.get('Status') ?? 'install ok installed').endsWith(' installed')).map((fields) => {
    const name = fields.get('Package')!;
    const version = fields.get('Version') ?? '';
    const arch = fields.get('Architecture') ?? '';
    const files = (listOf(name, arch) ?? '').split('\n').filter((path) => path.startsWith('/') && path !== '/.');
    const copyright = copyrightOf(name);
    const licenses = copyright ? [...new Set([...copyright.matchAll(/^License:[ \t]*(\S[^\n]*)$/gm)].map((match) => match[1]!.trim()))] : [];
    const purl = new PackageURL('deb', distro?.id ?? 'debian', name, version, { ...(arch ? { arch } : {}), ...distroQualifier(distro) }).toString();
    return { name, version, purl, licenses, files, foundIn };
  });
}

/** apk's installed database: P name, V version, A arch, L licence, F a directory and R its files. */
export function apkPackages(installed: string, foundIn: string, distro: Distro | undefined): Package[] {
  return installed.split(/\n\n+/).filter((block) => block.trim() !== '').flatMap((block) => {
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
    if (!name) return [];
    const purl = new PackageURL('apk', distro?.id ?? 'alpine', name, version, { ...(arch ? { arch } : {}), ...distroQualifier(distro) }).toString();
    return [{ name, version, purl, licenses: license ? [license] : [], files, foundIn }];
  });
}

/** A Python distribution from its dist-info METADATA (and RECORD, which lists its files relative to site-packages, CSV). */
export function pythonPackage(metadataPath: string, metadata: string, record: string | undefined): Package[] {
  const header = metadata.split(/\r?\n\r?\n/)[0]!;
  const field = (name: string): string | undefined => new RegExp(`^${name}:[ \\t]*([^\\n]*)$`, 'mi').exec(header)?.[1]?.trim();
  const name = field('Name');
  const version = field('Version') ?? '';
  if (!name) return [];
  const license = field('License-Expression') ?? field('License');
  const sitePackages = posix.dirname(posix.dirname(metadataPath));
  const firstField = (line: string): string => (line.startsWith('"') ? /^"((?:[^"]|"")*)"/.exec(line)?.[1]?.replaceAll('""', '"') ?? '' : line.split(',')[0]!).trim();
  const files = (record ?? '').split('\n').map(firstField).filter(Boolean).map((path) => posix.join(sitePackages, path));
  // PyPI's names are compared normalized: lower case, runs of -_. as one dash.
  const purl = new PackageURL('pypi', undefined, name.toLowerCase().replace(/[-_.]+/g, '-'), version, undefined).toString();
  return [{ name, version, purl, licenses: license && license !== 'UNKNOWN' ? [license] : [], files, foundIn: metadataPath }];
}

const npmPurl = (name: string, version: string): string => {
  const slash = name.startsWith('@') ? name.indexOf('/') : -1;
  return new PackageURL('npm', slash < 0 ? undefined : name.slice(0, slash), name.slice(slash + 1), version || undefined, undefined).toString();
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
export function npmPackage(path: string, text: string): Package[] {
  const json: unknown = JSON.parse(text);
  if (!isRecord(json) || typeof json.name !== 'string' || !NPM_NAME.test(json.name) || typeof json.version !== 'string') return [];
  return [{ name: json.name, version: json.version, purl: npmPurl(json.name, json.version), licenses: npmLicenses(json), files: [], foundIn: path }];
}

/** The packages a package-lock.json pins (lockfile v2 and v3's `packages`, v1's `dependencies`). */
export function npmLockPackages(path: string, text: string): Package[] {
  const json: unknown = JSON.parse(text);
  if (!isRecord(json)) return [];
  const found: Package[] = [];
  const add = (name: string, entry: unknown): void => {
    if (isRecord(entry) && NPM_NAME.test(name) && typeof entry.version === 'string' && !entry.link) {
      found.push({ name, version: entry.version, purl: npmPurl(name, entry.version), licenses: npmLicenses(entry), files: [], foundIn: path });
    }
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
  return found;
}

/** Where Go 1.18 and later keep a binary's build info: this magic, then the Go version and module info as length-prefixed strings. */
export const GO_BUILDINFO_MAGIC = Buffer.from('\xff Go buildinf:', 'latin1');

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
 * The modules a Go binary was built from, from the build info at the magic's offset (`info`
 * starts there): the main module, its dependencies (with replacements) and the standard library.
 * Binaries of Go before 1.18 keep pointers instead of strings there and give nothing.
 */
export function goModules(binary: string, info: Buffer): Package[] {
  if (info.length < 32 || (info[15]! & 2) === 0) return [];
  const version = lengthPrefixed(info, 32);
  const modinfo = version && lengthPrefixed(info, version[1]);
  if (!version || !modinfo) return [];
  // The module info sits between two 16-byte sentinels.
  const text = (modinfo[0].length >= 33 && modinfo[0][modinfo[0].length - 17] === 0x0a ? modinfo[0].subarray(16, -16) : modinfo[0]).toString('utf8');
  const modules: { path: string; version: string }[] = [];
  for (const line of text.split('\n')) {
    const [kind, path = '', moduleVersion = ''] = line.split('\t');
    if (kind === 'path' && modules.length === 0) modules.push({ path, version: '' });
    if (kind === 'mod') modules[0] = { path, version: moduleVersion === '(devel)' ? '' : moduleVersion };
    if (kind === 'dep') modules.push({ path, version: moduleVersion });
    if (kind === '=>' && modules.length > 1) modules[modules.length - 1] = { path, version: moduleVersion };
  }
  const go = version[0].toString('utf8').replace(/^go/, '');
  const all = [...modules, { path: 'stdlib', version: go }];
  return all.filter(({ path }) => /^[^/]+(\/[^/]+)*$/.test(path)).map(({ path, version: moduleVersion }) => {
    const slash = path.lastIndexOf('/');
    const purl = new PackageURL('golang', slash < 0 ? undefined : path.slice(0, slash), path.slice(slash + 1), moduleVersion || undefined, undefined).toString();
    return { name: path, version: moduleVersion, purl, licenses: [], files: [], foundIn: binary };
  });
}
