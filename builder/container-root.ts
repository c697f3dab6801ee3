// The container's own root filesystem as the root of RUN steps (--isolation=container), as kaniko
// uses it: before a step `/` is made to hold the stage's layers, and what the step changed there
// becomes its layer. What hoist needs while it builds is kept (layers/kept.ts): its own directory,
// the store, the build's inputs, credentials, and every mount of the container (/proc, /dev,
// /sys, /etc/hosts, /etc/resolv.conf, volumes). Kept paths are never removed, overwritten or put
// in a layer. One step at a time: the container has one root.
import { readFileSync, realpathSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { applyLayers, KeptPaths, type Layer, type Store } from '../layers/index.ts';
import { BuildError } from './errors.ts';

type ApplyOptions = Omit<Parameters<typeof applyLayers>[3], 'keep'>;

export class ContainerRoot {
  readonly keep: KeptPaths;
  private readonly store: Store;
  private readonly applyOptions: () => ApplyOptions;
  /** The layers `/` holds, bottom first; undefined when not known (the container's own files, a step that failed). */
  private holds: string[] | undefined;
  /** The last step's changes, not yet named by a layer: `/` holds `base` and them. */
  private afterStep: { token: string; base: string[] } | undefined;
  private turn: Promise<unknown> = Promise.resolve();

  constructor(store: Store, applyOptions: () => ApplyOptions, kept: string[]) {
    this.store = store;
    this.applyOptions = applyOptions;
    this.keep = new KeptPaths([...mountPoints(), ...kept.map(realPath)]);
    hideFromSteps();
  }

  /**
   * Runs `step` alone with `/` holding `layers`: the layers missing on top of what it holds are
   * applied, or, when it holds anything else, everything not kept is removed first. The step says
   * what it left with `stepped`.
   */
  use<T>(layers: Layer[], step: () => Promise<T>): Promise<T> {
    const mine = this.turn.then(async () => {
      await this.prepare(layers);
      return step();
    });
    this.turn = mine.catch(() => undefined);
    return mine;
  }

  private async prepare(layers: Layer[]): Promise<void> {
    const ids = layers.map((layer) => layer.diffId);
    const { holds } = this;
    // Until the step says otherwise, what `/` holds is not known.
    this.holds = undefined;
    this.afterStep = undefined;
    const extended = holds !== undefined && holds.length <= ids.length && holds.every((id, i) => id === ids[i]);
    if (!extended) this.keep.remove('/', '');
    await applyLayers(this.store, layers.slice(extended ? holds.length : 0), '/', { ...this.applyOptions(), keep: this.keep });
  }

  /** After a step on `base`: it changed nothing, or its changes are the layer `made` will name by `token`. */
  stepped(base: Layer[], token?: string): void {
    const ids = base.map((layer) => layer.diffId);
    if (token === undefined) this.holds = ids;
    else this.afterStep = { token, base: ids };
  }

  /** The layer written from the step `token` named: `/` holds it, unless another step has used `/` since. */
  made(token: string, diffId: string): void {
    if (this.afterStep?.token !== token) return;
    this.holds = [...this.afterStep.base, diffId];
    this.afterStep = undefined;
  }
}

/**
 * Makes this process unreadable to the steps, which run as root in the same container and would
 * otherwise read its environment (secrets given by env=, credentials) and open descriptors through
 * /proc/PID. Any change of credentials clears a process's dumpable flag, after which those files
 * need CAP_SYS_PTRACE, which Docker does not grant; so the effective group changes and changes
 * back. What the steps run is exec'd, and dumpable as usual.
 */
function hideFromSteps(): void {
  const group = process.getegid!();
  for (const other of [65534, 1]) {
    try {
      process.setegid!(other);
    } catch {
      continue; // not mapped in this container's user namespace
    }
    process.setegid!(group);
    return;
  }
  throw new BuildError('--isolation=container: hoist could not hide its own process from the steps (no group besides its own is mapped here): a step could read its environment');
}

/** The path with symlinks resolved (those of its existing part): a store named through a symlink is still kept. */
function realPath(path: string): string {
  const absolute = resolve(path);
  const parent = dirname(absolute);
  try {
    return realpathSync(absolute);
  } catch {
    return parent === absolute ? absolute : join(realPath(parent), basename(absolute));
  }
}

/** Every mount point of this process's mount namespace but `/` (field 5 of mountinfo, octal escapes undone). */
function mountPoints(): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean)
    .map((line) => line.split(' ')[4]!.replace(/\\([0-7]{3})/g, (_, code: string) => String.fromCharCode(parseInt(code, 8))))
    .filter((path) => path !== '/');
}
