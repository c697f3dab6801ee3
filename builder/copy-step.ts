// COPY and ADD: files from the context, a named context, another stage or image, or a heredoc,
// planned into the entries of one layer.
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import type { Instruction, PlannedStage } from '../parser/index.ts';
import { chainKey, type FileTree, type LayerEntry } from '../layers/index.ts';
import type { ClientOptions } from '../registry/index.ts';
import { readXattrs } from '../userns-native/index.ts';
import type { BuildCache } from './cache.ts';
import { absoluteDestination, imagePath, planCopy, withParentsBelow } from './copy.ts';
import { gitCheckout, isGitUrl, redacted } from './remote-context.ts';
import { abbreviate } from './errors.ts';
import type { Images } from './images.ts';
import type { BuildSession } from './session.ts';
import type { CachedStep, StageState } from './stage.ts';
import { resolveOwner } from './users.ts';

export type CopyInstruction = Extract<Instruction, { kind: 'COPY' | 'ADD' }>;

export class CopySteps {
  private readonly session: BuildSession;
  private readonly images: Images;
  private readonly cache: BuildCache;
  /** How ADD reaches URLs: as the registries are reached. */
  private readonly registry: ClientOptions | undefined;

  /** The build's secrets: GIT_AUTH_TOKEN.<host> or GIT_AUTH_TOKEN fetches ADD's git sources on https hosts. */
  private readonly secrets: ReadonlyMap<string, Buffer>;

  constructor(session: BuildSession, images: Images, cache: BuildCache, registry: ClientOptions | undefined, secrets: ReadonlyMap<string, Buffer>) {
    this.session = session;
    this.images = images;
    this.cache = cache;
    this.registry = registry;
    this.secrets = secrets;
  }

  /** A COPY or ADD as a step of the stage: its cache inputs (with the content of the files it reads), and how to make its layer. */
  async step(planned: PlannedStage, state: StageState, instruction: CopyInstruction): Promise<CachedStep> {
    const { session, images, cache, registry } = this;
    const { store, times } = session;
    const workdir = state.config.config.WorkingDir || '/';
    const from = instruction.kind === 'COPY' ? instruction.from : undefined;
    const source = from === undefined ? { dir: await session.context() } : await images.copySource(planned, instruction, from);
    const fromImage = 'image' in source ? source.image : undefined;
    // ADD's git sources are checked out now: the commit a ref names is part of the key.
    const gitSources = instruction.kind === 'ADD' ? instruction.sources.filter(isGitUrl) : [];
    const pathSources = instruction.sources.filter((each) => !gitSources.includes(each));
    const checkouts: { dir: string; commit: string }[] = [];
    for (const url of gitSources) {
      const work = await session.tempDir('git');
      const checkout = await gitCheckout(url, work, join(work, 'repository'), { secrets: this.secrets, keepGitDir: instruction.kind === 'ADD' && instruction.keepGitDir });
      // ADD --checksum of a git source is its commit, as BuildKit checks it.
      const checksum = instruction.kind === 'ADD' ? instruction.checksum : undefined;
      if (checksum !== undefined && !checkout.commit.startsWith(checksum)) throw new Error(`${redacted(url)}: the commit is ${checkout.commit}, not ${checksum} (--checksum)`);
      checkouts.push(checkout);
    }
    // The destination with symlinks in the image followed: COPY x /lib/ lands in /usr/lib/ where
    // /lib links to usr/lib, instead of replacing the link with a directory.
    const absoluteDest = imagePath(absoluteDestination(instruction.dest, workdir));
    const options = async (tree: FileTree) => ({
      dest: tree.realPath(absoluteDest), workdir, chmod: instruction.chmod, parents: instruction.parents, exclude: instruction.exclude,
      below: (path: string) => tree.get(path), createdDirMtime: times.createdDirMtime, warn: (message: string) => session.warn(message),
      command: instruction.kind, tmpDir: await session.tempDir('copy'),
      ...(instruction.kind === 'ADD' ? { unpack: instruction.unpack, checksum: instruction.checksum, registry } : {}),
    });
    // Sources in a directory (the context) are listed before the key, which holds their content.
    // --chown is applied after: it gives every entry the same owner, and the key holds it as written.
    let contextEntries: LayerEntry[] = [];
    let files: Record<string, string> | undefined;
    const hashes = 'dir' in source ? await session.hashes(source.dir.root) : undefined;
    if (hashes && 'dir' in source && pathSources.length > 0) {
      const { root, isIgnored, mayUnignoreUnder } = source.dir;
      contextEntries = await planCopy({
        ...(await options(await state.tree(store))), root, sources: pathSources,
        isIgnored, mayUnignoreUnder, onFile: (path, stats) => hashes.noteStats(path, stats),
      });
      // Files whose stat data changed are hashed first only when a cache from elsewhere may hold
      // them; otherwise a miss is likely, and the layer write hashes them as it reads them.
      files = hashes.entryHashes(contextEntries, { readChanged: cache.hasSources });
    }
    const sources = [...instruction.sources, ...instruction.inlineSources.map((inline) => `<<${inline.name}`)];
    const { range: _range, original: _original, ...expanded } = instruction;
    const inputs = {
      step: {
        instruction: JSON.stringify(expanded), workdir, ...(fromImage ? { from: chainKey(fromImage.layers.map((layer) => layer.diffId)) } : {}),
        ...(checkouts.length > 0 ? { commits: checkouts.map((each) => each.commit).join(' ') } : {}), ...times.cacheInputs(),
      },
      env: {}, args: {},
    };
    return {
      label: abbreviate(`${instruction.kind} ${sources.join(' ')}`),
      createdBy: `${instruction.kind}${from ? ` --from=${from}` : ''} ${sources.join(' ')} ${instruction.dest} # buildkit`,
      inputs: files === undefined && contextEntries.length > 0
        ? (contentHashes) => ({ ...inputs, files: hashes!.learn(contentHashes, contextEntries) })
        : { ...inputs, ...(files ? { files } : {}) },
      make: async () => {
        const common = await options(await state.tree(store));
        const chown = instruction.chown === undefined ? undefined : await resolveOwner(store, state.layers, instruction.chown);
        const entries = chown ? contextEntries.map((entry) => ({ ...entry, ...chown })) : [...contextEntries];
        await withXattrs(entries, (message) => session.warn(message));
        if (fromImage && instruction.sources.length > 0) {
          // A stage's owners are kept, as BuildKit does; extracted without root they are not known yet.
          const root = await images.root(fromImage);
          for (const entry of await planCopy({ ...common, chown, root, sources: instruction.sources, keepOwners: session.host.root })) entries.push(entry);
        }
        for (const checkout of checkouts) for (const entry of await planCopy({ ...common, checksum: undefined, chown, root: checkout.dir, sources: ['.'] })) entries.push(entry);
        for (const inline of instruction.inlineSources) {
          const dir = await session.tempDir('heredoc');
          // The name is the Dockerfile's: resolved as a path under the temp dir, `..` cannot leave it.
          const file = join(dir, posix.resolve('/', inline.name));
          await mkdir(dirname(file), { recursive: true });
          await writeFile(file, inline.content, { mode: 0o644 });
          for (const entry of await planCopy({ ...common, chown, root: dir, sources: [inline.name] })) entries.push(entry);
        }
        return { entries: withParentsBelow(dedupe(entries), common.below, common.createdDirMtime) };
      },
    };
  }
}

/**
 * Gives files read from the host (a context's, a directory context's) their extended attributes
 * (a file capability, user.* attributes), as BuildKit's copy keeps them; not security.selinux, the
 * host's label. A COPY's key holds contents, not attributes: a change of attributes alone rebuilds nothing.
 */
export async function withXattrs(entries: LayerEntry[], warn: (message: string) => void): Promise<void> {
  const files = entries.filter((entry): entry is LayerEntry & { source: string } => entry.type === 'file' && typeof entry.source === 'string');
  if (files.length === 0) return;
  const found = await readXattrs(files.map((entry) => entry.source)).catch((error: Error) => {
    warn(`the context files' extended attributes are not copied: ${error.message}`);
    return new Map<string, Record<string, Buffer>>();
  });
  for (const entry of files) {
    const { 'security.selinux': _label, ...kept } = found.get(entry.source) ?? {};
    if (Object.keys(kept).length > 0) entry.xattrs = kept;
  }
}

/** When two sources give the same path, the later one wins, as files copied in order would. */
function dedupe(entries: LayerEntry[]): LayerEntry[] {
  return [...new Map(entries.map((entry) => [entry.path, entry])).values()];
}

