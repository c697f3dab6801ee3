// An image's packages, found from its file tree (the layers' listings) and the files it points
// to, without extracting the image. One pass reads the layers that hold a package database or an
// executable, two at a time: it keeps the databases, looks for Go's build info in executables,
// and takes the SHA-1 of every file (SPDX asks it of each file a package lists). A second pass
// reads only the layers whose files a package lists and the first pass did not read. What an image
// holds is untrusted, and nothing in it can make the SBOM's memory or time grow past fixed
// budgets: databases and Go build info are kept up to a size each and in all, packages up to a
// count, symlinks are followed within Linux's limits and each once; what is left out is named.
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import pLimit from 'p-limit';
import { excerpt, FileTree, layerTar, listingPath, parentOf, readTar, type Image, type Store } from '../layers/index.ts';
import {
  apkPackages, Catalog, dpkgPackages, GO_BUILDINFO_MAGIC, goBuildInfo, goModules, npmLockPackages, npmPackage, parseOsRelease, pythonPackage, type GoBuildInfo, type Package,
} from './packages.ts';

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
/** The most packages listed: a large image has a few thousand, and the SBOM of 50,000 takes some 100 MB to make. */
const PACKAGE_LIMIT = 50_000;
/** How much of a Go binary's build info is read: the module list of a large program is tens of KiB. */
const GO_INFO_LIMIT = 1024 * 1024;
/** The most Go build info kept, in bytes and in binaries: an image of a hundred Go programs holds a few MiB. */
const GO_INFOS_LIMIT = 8 << 20;
const GO_BINARIES_LIMIT = 1024;
/** Linux's PATH_MAX: no symlink target, and no path a lookup goes through, is this long. */
const PATH_MAX = 4096;
/** Linux's limit on the symlinks one lookup follows (ELOOP). */
const MAX_LINK_DEPTH = 40;
/**
 * The most bytes of path that following symlinks may walk in all, about a second's work: each link
 * is followed once, and an ordinary one (`/lib` to `usr/lib`) walks some 50 bytes.
 */
const LINK_WORK_LIMIT = 256 << 20;

export async function imageContents(store: Store, image: Image): Promise<ImageContents> {
  const tree = new FileTree();
  for (const layer of image.layers) await tree.applyLayer(store, layer);
  const realPaths = new RealPaths(tree);
  const isFile = (path: string): boolean => ['file', 'hardlink'].includes(tree.get(path)?.type ?? '');
  const databases = new Set<string>();
  const executables = new Set<string>();
  for (const [path, { info }] of tree.entries()) {
    if (isFile(path) && DATABASE.some((pattern) => pattern.test(path))) databases.add(path);
    if (info.type === 'file' && (info.mode & 0o111) !== 0) executables.add(path);
  }
  const osRelease = OS_RELEASE.map((path) => realPaths.of(path)).find((path): path is string => typeof path === 'string' && isFile(path));
  if (osRelease) databases.add(osRelease);

  const text = new Map<string, string>();
  const sha1 = new Map<string, string>();
  const binaries = new Map<string, GoBuildInfo>();
  const catalog = new Catalog(PACKAGE_LIMIT);
  const { skipped } = catalog;
  let keptInAll = 0;
  let goInfoInAll = 0;
  const goInfoLeftOut: string[] = [];
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
    const info = found && goBuildInfo(found);
    if (found && !info && found.length >= GO_INFO_LIMIT) skipped.push(`the Go build info of /${path} (the SBOM reads at most ${GO_INFO_LIMIT >> 20} MiB of one binary)`);
    if (!info) return;
    goInfoInAll += info.go.length + info.modules.length;
    if (binaries.size < GO_BINARIES_LIMIT && goInfoInAll <= GO_INFOS_LIMIT) binaries.set(path, info);
    else goInfoLeftOut.push(`/${path}`);
  };
  const firstPass = new Set([...databases, ...executables].map((path) => tree.node(path)!.layer));
  await readLayers(store, image, tree, firstPass, () => true, visit, sha1);
  if (goInfoLeftOut.length > 0) {
    skipped.push(`the Go build info of ${goInfoLeftOut.length} binaries, such as ${goInfoLeftOut.sort()[0]} (the SBOM reads at most ${GO_INFOS_LIMIT >> 20} MiB of Go build info in all, from ${GO_BINARIES_LIMIT} binaries at most)`);
  }

  // Databases in path order, whichever layer was read first, then binaries in path order.
  const found: Package[][] = [];
  const sorted = new Map([...text].sort(([a], [b]) => (a < b ? -1 : 1)));
  for (const [path, each] of databasePackages(catalog, sorted, osRelease)) {
    if (each instanceof Error) skipped.push(`/${path} (${each.message})`);
    else found.push(each);
  }
  for (const path of [...binaries.keys()].sort()) found.push(goModules(catalog, `/${path}`, binaries.get(path)!));
  const packages = found.flat();

  // The files whose path cannot be followed, by why: one warning for each symlink that stops them.
  const real = new Map<string, string>();
  const unfollowed = new Map<string, string[]>();
  for (const file of new Set(packages.flatMap((each) => each.files))) {
    const path = realPaths.of(file);
    if (path instanceof Error) {
      const files = unfollowed.get(path.message) ?? [];
      unfollowed.set(path.message, files);
      files.push(file);
    } else if (isFile(path)) real.set(file, path);
  }
  for (const [why, files] of unfollowed) {
    const first = excerpt(files[0]!, 120);
    skipped.push(`the checksum${files.length === 1 ? ` of ${first}` : `s of ${files.length} files whose path it could not follow, such as ${first}`} (${why})`);
  }
  const unread = new Set([...real.values()].filter((path) => !sha1.has(path)));
  await readLayers(store, image, tree, new Set([...unread].map((path) => tree.node(path)!.layer)), (path) => unread.has(path), visit, sha1);
  const known = [...real].filter(([, path]) => sha1.has(path));
  return { packages, sha1: new Map(known.map(([file, path]) => [file, sha1.get(path)!])), skipped };
}

/** The packages each database text records, by path, or the error that parsing it met (`osRelease` names the distribution). */
function databasePackages(catalog: Catalog, text: Map<string, string>, osRelease: string | undefined): Map<string, Package[] | Error> {
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
      read(path, () => dpkgPackages(catalog, content, absolute, distro,
        (name, arch) => text.get(`var/lib/dpkg/info/${name}.list`) ?? text.get(`var/lib/dpkg/info/${name}:${arch}.list`),
        (name) => text.get(`usr/share/doc/${name}/copyright`)));
    }
    if (path === 'lib/apk/db/installed') read(path, () => apkPackages(catalog, content, absolute, distro));
    if (path.endsWith('.dist-info/METADATA')) read(path, () => pythonPackage(catalog, absolute, content, text.get(`${posix.dirname(path)}/RECORD`)));
    if (path.endsWith('/package.json')) read(path, () => npmPackage(catalog, absolute, content));
  }
  // A lock file's packages that are also installed are listed once, as installed.
  const installed = new Set([...found.values()].flatMap((each) => (each instanceof Error ? [] : each.map((pkg) => pkg.purl))));
  for (const [path, content] of text) {
    if (path.endsWith('package-lock.json')) read(path, () => npmLockPackages(catalog, `/${path}`, content, installed));
  }
  return found;
}

/**
 * The real paths of the paths databases record, with the image's symlinks followed inside the
 * image as Linux follows them (FileTree.realPath), in bounds an image cannot stretch: a symlink
 * target or a path of PATH_MAX bytes or more is not followed (Linux makes and follows none), each
 * directory and each symlink is resolved once however many files are under it, links nest at most
 * MAX_LINK_DEPTH deep, and once LINK_WORK_LIMIT bytes of path have been walked through links in
 * all, no more links are followed. A path that cannot be followed gets an Error saying why.
 */
class RealPaths {
  /** Directories as databases write them (`/usr/lib`), and where they lead. */
  private readonly directories = new Map<string, string | Error>([['', '']]);
  /** Symlinks by their real path, and where they lead. */
  private readonly links = new Map<string, string | Error>();
  private readonly tree: FileTree;
  private walked = 0;

  constructor(tree: FileTree) {
    this.tree = tree;
  }

  /** Where `path` (absolute or relative) leads, relative to the root: `` for the root itself. */
  of(path: string): string | Error {
    if (path.length >= PATH_MAX) return new Error(`a path of ${path.length} bytes, longer than Linux's ${PATH_MAX - 1}`);
    const slash = path.lastIndexOf('/');
    const dir = this.directory(path.slice(0, Math.max(0, slash)));
    return dir instanceof Error ? dir : this.step(dir, path.slice(slash + 1), 0);
  }

  /** Where a directory leads: each of its ancestors resolved once, from the nearest one already known. */
  private directory(path: string): string | Error {
    const pending: string[] = [];
    for (let at = path; !this.directories.has(at); at = parentOf(at)) pending.push(at);
    for (const at of pending.reverse()) {
      const parent = this.directories.get(parentOf(at))!;
      this.directories.set(at, parent instanceof Error ? parent : this.step(parent, at.slice(at.lastIndexOf('/') + 1), 0));
    }
    return this.directories.get(path)!;
  }

  /** Where `part` leads from `dir`, a real path (no symlink in it): a symlink there is followed. */
  private step(dir: string, part: string, depth: number): string | Error {
    if (part === '' || part === '.') return dir;
    if (part === '..') return parentOf(dir);
    const next = dir === '' ? part : `${dir}/${part}`;
    if (next.length >= PATH_MAX) return new Error(`it leads to a path longer than Linux's ${PATH_MAX - 1} bytes`);
    const info = this.tree.get(next);
    return info?.type === 'symlink' ? this.follow(next, info.linkname ?? '', depth) : next;
  }

  /** Where the symlink at `link` (a real path) leads, once: a link met again while it is being followed is a loop. */
  private follow(link: string, target: string, depth: number): string | Error {
    const known = this.links.get(link);
    if (known !== undefined) return known;
    if (target.length >= PATH_MAX) return this.remember(link, new Error(`/${excerpt(link, 120)} links to a target of ${target.length} bytes, longer than Linux's ${PATH_MAX - 1}`));
    if (depth >= MAX_LINK_DEPTH) return new Error(`too many levels of symbolic links at /${excerpt(link, 120)}`);
    this.links.set(link, new Error(`a symbolic link loop at /${excerpt(link, 120)}`));
    let at: string | Error = target.startsWith('/') ? '' : parentOf(link);
    for (const part of target.split('/')) {
      if (at instanceof Error) break;
      this.walked += at.length + part.length;
      if (this.walked > LINK_WORK_LIMIT) return this.remember(link, new Error(`the SBOM follows symlinks through at most ${LINK_WORK_LIMIT >> 20} MiB of paths`));
      at = this.step(at, part, depth + 1);
    }
    return this.remember(link, at);
  }

  private remember(link: string, leads: string | Error): string | Error {
    this.links.set(link, leads);
    return leads;
  }
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
