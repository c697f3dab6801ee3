// How RUN steps are isolated, chosen once per build (--isolation, else found out here) and said
// once at its start:
// - userns: hoist's sandbox, a user namespace (or root's own) with mount, pid, ipc and uts ones;
// - container: the container hoist runs in is the isolation. RUN steps run in its own root
//   filesystem with real owners, as kaniko's do: for root in a container that may not make
//   namespaces or mounts (no CAP_SYS_ADMIN, seccomp's default profile), with Docker's default
//   capabilities. Everything hoist itself needs stays out of the image's way (containerRoot.ts);
// - none: RUN cannot run here (an ordinary user without user namespaces); builds without RUN work.
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { probeSandbox } from '../userns-native/index.ts';
import { BuildError } from './errors.ts';

export type IsolationMode = 'userns' | 'container' | 'none';
export const ISOLATION_MODES: readonly IsolationMode[] = ['userns', 'container', 'none'];

export interface Isolation {
  mode: IsolationMode;
  /** What the build prints once: the mode and what it means here. */
  summary: string;
  /** With mode none: why RUN cannot run, how to check, and what would work. */
  refusal?: string;
}

/** hoist's own directory (bin/, builder/, node_modules/, userns-native/): what an image may never overwrite. */
export const INSTALL_ROOT = fileURLToPath(new URL('..', import.meta.url)).replace(/\/$/, '');

/** The capabilities RUN steps in the container's root need (bits of CapEff), as Docker grants them by default. */
const NEEDED_CAPABILITIES: [string, number][] = [
  ['CAP_CHOWN', 0], ['CAP_DAC_OVERRIDE', 1], ['CAP_FOWNER', 3], ['CAP_FSETID', 4], ['CAP_SETGID', 6], ['CAP_SETUID', 7],
];

/** The mode asked for, or the first of userns, container and none that works here. */
export async function chooseIsolation(asked: IsolationMode | undefined): Promise<Isolation> {
  if (asked === 'none') return none('--isolation=none was given');
  const sandbox = await sandboxRefusal();
  if (sandbox === undefined && asked !== 'container') return { mode: 'userns', summary: "isolation: userns (hoist's sandbox: user, mount, pid, ipc and uts namespaces)" };
  const container = containerRefusal();
  if (container === undefined && asked !== 'userns') {
    return { mode: 'container', summary: `isolation: container (RUN steps run in this container's root filesystem, as kaniko's do; ${INSTALL_ROOT}, the store and the mounts stay out of the image)` };
  }
  if (asked === 'userns') throw new BuildError(`--isolation=userns: hoist's sandbox cannot be made here: ${sandbox}`);
  if (asked === 'container') throw new BuildError(`--isolation=container: ${container}`);
  return none(`hoist's sandbox cannot be made here (${sandbox}), and RUN cannot run in this container's root either (${container})`);
}

function none(why: string): Isolation {
  return {
    mode: 'none',
    summary: `isolation: none (RUN steps cannot run: ${why})`,
    refusal: `RUN cannot run here: ${why}. Check with: unshare --user --map-root-user true (it fails where user namespaces are refused: see /proc/sys/user/max_user_namespaces, and a container's seccomp and AppArmor profiles). `
      + 'RUN works in hoist\'s sandbox where unprivileged user namespaces are allowed, or, in a container that refuses them, as root in hoist\'s executor image (examples/executor.Dockerfile: --isolation=container)',
  };
}

/** Why hoist's sandbox cannot be made, or undefined when it can. */
async function sandboxRefusal(): Promise<string | undefined> {
  if (process.env.HOIST_USERNS_REFUSED) return `user namespaces are refused (${process.env.HOIST_USERNS_REFUSED})`;
  if (process.getuid?.() !== 0) return 'hoist was not started through bin/hoist, which enters its user namespace';
  return probeSandbox();
}

/** Why RUN cannot run in this container's own root filesystem, or undefined when it can. */
function containerRefusal(): string | undefined {
  if (process.getuid?.() !== 0 || process.env.HOIST_USERNS === '1') return 'that needs root in the container (uid 0), not an ordinary user';
  if (!inContainer()) {
    return 'no container is seen here (no /.dockerenv, /run/.containerenv, $container or Kubernetes), and RUN steps in / would rewrite this machine\'s own system; in a throwaway container, set container=1 in its environment';
  }
  const effective = BigInt(`0x${/^CapEff:\s*([0-9a-f]+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0'}`);
  const missing = NEEDED_CAPABILITIES.filter(([, bit]) => (effective & (1n << BigInt(bit))) === 0n).map(([name]) => name);
  if (missing.length > 0) return `the container lacks ${missing.join(', ')} (Docker grants them by default)`;
  const outside = runtimeFilesOutside(INSTALL_ROOT);
  if (outside) {
    return `hoist's runtime uses ${outside}, outside ${INSTALL_ROOT}, and an image would overwrite it: run hoist from its executor image (examples/executor), where Node and its libraries live in ${INSTALL_ROOT}`;
  }
  return undefined;
}

/** Files container runtimes leave in a container's root (Docker's, Podman's): kept there, for the next build to see. */
export const CONTAINER_MARKERS = ['/.dockerenv', '/run/.containerenv'];

function inContainer(): boolean {
  return CONTAINER_MARKERS.some((marker) => existsSync(marker)) || !!process.env.container || !!process.env.KUBERNETES_SERVICE_HOST;
}

/** The first file this process has mapped (Node, its libraries) that lies outside `root`. */
function runtimeFilesOutside(root: string): string | undefined {
  for (const line of readFileSync('/proc/self/maps', 'utf8').split('\n')) {
    const path = line.split(/\s+/).slice(5).join(' ');
    if (path.startsWith('/') && !path.startsWith(`${root}/`) && !/^\/(dev|memfd:)/.test(path) && !path.endsWith(' (deleted)')) return path;
  }
  return undefined;
}
