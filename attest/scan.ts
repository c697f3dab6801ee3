// An image's packages, found from its file tree (the layers' listings) and the files it points
// to, without extracting the image. One pass reads the layers that hold a package database or an
// executable, two at a time: it keeps the databases, looks for Go's build info in executables,
// and takes the SHA-1 of every file (SPDX asks it of each file a package lists). A second pass
// reads only the layers whose files a package lists and the first pass did not read. What an image
// holds is untrusted: databases are kept up to a size, and one that does not parse is skipped.
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import pLimit from 'p-limit';
import { FileTree, layerTar, listingPath, readTar, type Image, type Store } from '../layers/index.ts';
import { apkPackages, dpkgPackages, GO_BUILDINFO_MAGIC, goModules, npmLockPackages, npmPackage, parseOsRelease, pythonPackage, type Package } from './packages.ts';

export interface ImageContents {
  packages: Package[];
  /** The SHA-1 of each package file that is a regular file in the image, by the path its database records. */
  sha1: Map<string, string>;
  /** What was not read, and why. */
  skipped: string[];
}

/** The files that say what is installed, by their path in a layer listing. */
const DATABASE = [
  /^var\/lib\/dpkg\/status$/, /^var\/lib\/dpkg\/status\.d\/[^/]+$/, /^var\/lib\/dpkg\/info\/[^/]+\.list$/, /^usr\/share\/doc\/[^/]+\/copyright$/,
  /^lib\/apk\/db\/installed$/,
  /\.dist-info\/(METADATA|RECORD)$/,
  /(^|\/)node_modules\/(@[^/]+\/)?[^/@.][^/]*\/package\.json$/,
  /^(?!.*node_modules\/).*package-lock\.json$/,
];
const OS_RELEASE = ['etc/os-release', 'usr/lib/os-release'];
/** The most of one database file kept, and of all of them: dpkg's status for a large image is a few MiB. */
const DATABASE_LIMIT = 64 << 20;
const DATABASES_LIMIT = 256 << 20;
/** The most packages listed: a large image has a few thousand. */
const PACKAGE_LIMIT = 100_000;
/** How much of a Go binary's build info is read: the module list of a large program is tens of KiB. */
const GO_INFO_LIMIT = 1024 * 1024;

export async function imageContents(store: Store, image: Image): Promise<ImageContents> {
  const tree = new FileTree();
  for (const layer of image.layers) await tree.applyLayer(store, layer);
  const realPath = (path: string): string | undefined => {
    try {
      return tree.realPath(path).slice(1);
    } catch {
      return undefined; // a symlink loop
    }
  };
  const isFile = (path: string): boolean => ['file', 'hardlink'].includes(tree.get(path)?.type ?? '');
  const databases = new Set<string>();
  const executables = new Set<string>();
  for (const [path, { info }] of tree.entries()) {
    if (isFile(path) && DATABASE.some((pattern) => pattern.test(path))) databases.add(path);
    if (info.type === 'file' && (info.mode & 0o111) !== 0) executables.add(path);
  }
  const osRelease = OS_RELEASE.map(realPath).find((path) => path !== undefined && isFile(path));
  if (osRelease) databases.add(osRelease);

  const text = new Map<string, string>();
  const sha1 = new Map<string, string>();
  const binaries = new Map<string, Package[]>();
  const skipped: string[] = [];
  let keptInAll = 0;
  const visit = async (path: string, body: AsyncIterable<Buffer>): Promise<void> => {
    const hash = createHash('sha1');
    const goInfo = executables.has(path) ? new GoInfoFinder() : undefined;
    let kept: Buffer[] | undefined = databases.has(path) ? [] : undefined;
    let keptHere = 0;
    for await (const chunk of body) {
      hash.update(chunk);
      goInfo?.push(chunk);
      if (!kept) continue;
      kept.push(chunk);
      keptHere += chunk.length;
      keptInAll += chunk.length;
      if (keptHere > DATABASE_LIMIT || keptInAll > DATABASES_LIMIT) {
        kept = undefined;
        skipped.push(`/${path} (the SBOM keeps at most ${DATABASE_LIMIT >> 20} MiB of a database and ${DATABASES_LIMIT >> 20} MiB of all)`);
      }
    }
    sha1.set(path, hash.digest('hex'));
    if (kept) text.set(path, Buffer.concat(kept).toString('utf8'));
    const found = goInfo?.result();
    if (found) binaries.set(path, goModules(`/${path}`, found));
  };
  const firstPass = new Set([...databases, ...executables].map((path) => tree.node(path)!.layer));
  await readLayers(store, image, tree, firstPass, () => true, visit, sha1);

  // Databases in path order, whichever layer was read first.
  const packages: Package[] = [];
  const sorted = new Map([...text].sort(([a], [b]) => (a < b ? -1 : 1)));
  for (const [path, found] of databasePackages(sorted, osRelease)) {
    if (found instanceof Error) skipped.push(`/${path} (${found.message})`);
    else packages.push(...found);
  }
  for (const path of [...binaries.keys()].sort()) packages.push(...binaries.get(path)!);
  if (packages.length > PACKAGE_LIMIT) {
    skipped.push(`${packages.length - PACKAGE_LIMIT} packages past the first ${PACKAGE_LIMIT}`);
    packages.length = PACKAGE_LIMIT;
  }

  const realPaths = new Map<string, string>();
  for (const file of new Set(packages.flatMap((each) => each.files))) {
    const real = realPath(file);
    if (real && isFile(real)) realPaths.set(file, real);
  }
  const unread = new Set([...realPaths.values()].filter((real) => !sha1.has(real)));
  await readLayers(store, image, tree, new Set([...unread].map((path) => tree.node(path)!.layer)), (path) => unread.has(path), visit, sha1);
  const known = [...realPaths].filter(([, real]) => sha1.has(real));
  return { packages, sha1: new Map(known.map(([file, real]) => [file, sha1.get(real)!])), skipped };
}

/** The packages each database text records, by path, or the error that parsing it met (`osRelease` names the distribution). */
function databasePackages(text: Map<string, string>, osRelease: string | undefined): Map<string, Package[] | Error> {
  const release = osRelease === undefined ? undefined : text.get(osRelease);
  const distro = release === undefined ? undefined : parseOsRelease(release);
  const found = new Map<string, Package[] | Error>();
  const read = (path: string, parse: () => Package[]): void => {
    try {
      found.set(path, parse());
    } catch (error) {
      found.set(path, error as Error);
    }
  };
  for (const [path, content] of text) {
    const absolute = `/${path}`;
    if (/^var\/lib\/dpkg\/status(\.d\/[^/]+)?$/.test(path) && !path.endsWith('.md5sums')) {
      read(path, () => dpkgPackages(content, absolute, distro,
        (name, arch) => text.get(`var/lib/dpkg/info/${name}.list`) ?? text.get(`var/lib/dpkg/info/${name}:${arch}.list`),
        (name) => text.get(`usr/share/doc/${name}/copyright`)));
    }
    if (path === 'lib/apk/db/installed') read(path, () => apkPackages(content, absolute, distro));
    if (path.endsWith('.dist-info/METADATA')) read(path, () => pythonPackage(absolute, content, text.get(`${posix.dirname(path)}/RECORD`)));
    if (path.endsWith('/package.json')) read(path, () => npmPackage(absolute, content));
  }
  // A lock file's packages that are also installed are listed once, as installed.
  const installed = new Set([...found.values()].flatMap((each) => (each instanceof Error ? [] : each.map((pkg) => pkg.purl))));
  for (const [path, content] of text) {
    if (path.endsWith('package-lock.json')) read(path, () => npmLockPackages(`/${path}`, content).filter((each) => !installed.has(each.purl)));
  }
  return found;
}

/**
 * Reads the image's files that `wanted` picks from the layers at these positions, two layers at a
 * time: only a path's copy in the topmost layer that has it is the image's. A hard link gets the
 * SHA-1 of the file it links to, which comes before it in its layer.
 */
async function readLayers(store: Store, image: Image, tree: FileTree, layers: Set<number>, wanted: (path: string) => boolean,
  visit: (path: string, body: AsyncIterable<Buffer>) => Promise<void>, sha1: Map<string, string>): Promise<void> {
  const limit = pLimit(2);
  await Promise.all([...layers].map((position) => limit(async () => {
    for await (const { header, body } of readTar(layerTar(store, image.layers[position]!))) {
      const path = listingPath(header.path);
      if (tree.node(path)?.layer !== position || !wanted(path)) continue;
      if (header.type === 'file') await visit(path, body);
      const target = header.type === 'hardlink' ? sha1.get(listingPath(header.linkname ?? '')) : undefined;
      if (target) sha1.set(path, target);
    }
  })));
}

/**
 * Finds Go's build info in a file read chunk by chunk, as Go's own reader does: the magic at an
 * offset that is a multiple of 16, followed by a pointer size of 4 or 8. Keeps what follows it.
 */
class GoInfoFinder {
  /** How far into the file the chunks so far reach. */
  private offset = 0;
  /** The bytes since the last offset that is a multiple of 16, where a header may start and go on into the next chunk. */
  private carry = Buffer.alloc(0);
  private found: Buffer[] | undefined;
  private kept = 0;

  push(chunk: Buffer): void {
    if (this.found) {
      if (this.kept < GO_INFO_LIMIT) this.keep(chunk);
      return;
    }
    const start = this.offset;
    this.offset += chunk.length;
    if (this.carry.length > 0 && isHeader(Buffer.concat([this.carry, chunk.subarray(0, 16)]), 0)) {
      this.found = [];
      this.keep(this.carry);
      this.keep(chunk);
      return;
    }
    for (let at = chunk.indexOf(GO_BUILDINFO_MAGIC); at >= 0; at = chunk.indexOf(GO_BUILDINFO_MAGIC, at + 1)) {
      if ((start + at) % 16 === 0 && at + 16 <= chunk.length && isHeader(chunk, at)) {
        this.found = [];
        this.keep(chunk.subarray(at));
        return;
      }
    }
    const lastAligned = this.offset - (this.offset % 16);
    this.carry = lastAligned >= start ? Buffer.from(chunk.subarray(lastAligned - start)) : Buffer.concat([this.carry, chunk]);
  }

  private keep(bytes: Buffer): void {
    this.found!.push(Buffer.from(bytes));
    this.kept += bytes.length;
  }

  result(): Buffer | undefined {
    return this.found && Buffer.concat(this.found);
  }
}

/** Whether `bytes` holds Go's build-info header at `at`: the magic and a pointer size of 4 or 8. */
const isHeader = (bytes: Buffer, at: number): boolean =>
  bytes.length >= at + 16 && bytes.subarray(at, at + GO_BUILDINFO_MAGIC.length).equals(GO_BUILDINFO_MAGIC) && (bytes[at + 14] === 4 || bytes[at + 14] === 8);
