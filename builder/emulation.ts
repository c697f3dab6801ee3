// RUN for another platform than this machine's runs its programs under an emulator that the
// kernel's binfmt_misc starts (QEMU user emulation). Before the first step, each platform a RUN
// needs is checked for a handler: a build that cannot work stops at once and says what fixes it.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatPlatform, hostPlatform, type BuildPlan } from '../parser/index.ts';
import { BuildError } from './errors.ts';

const BINFMT = '/proc/sys/fs/binfmt_misc';

/** ELF class (1: 32-bit, 2: 64-bit), byte order (1: little, 2: big) and machine of each architecture, by its OCI name. */
const ELF: Record<string, [number, number, number]> = {
  amd64: [2, 1, 0x3e], '386': [1, 1, 0x03], arm64: [2, 1, 0xb7], arm: [1, 1, 0x28], riscv64: [2, 1, 0xf3],
  ppc64le: [2, 1, 0x15], s390x: [2, 2, 0x16], mips64le: [2, 1, 0x08], loong64: [2, 1, 0x102],
};

/** The first 20 bytes of an executable for `architecture` (what handlers match), if this knows it. */
function elfHeader(architecture: string): Buffer | undefined {
  const elf = ELF[architecture];
  if (!elf) return undefined;
  const [elfClass, order, machine] = elf;
  const header = Buffer.alloc(20);
  header.set([0x7f, 0x45, 0x4c, 0x46, elfClass, order, 1]);
  const write = order === 1 ? 'writeUInt16LE' : 'writeUInt16BE';
  header[write](2, 16); // ET_EXEC
  header[write](machine, 18);
  return header;
}

/** Whether an enabled binfmt_misc handler would start an executable for `architecture`. */
function hasHandler(architecture: string): boolean {
  const header = elfHeader(architecture);
  if (!header) return true; // an architecture this does not know: the kernel will say for itself
  let names: string[];
  try {
    names = readdirSync(BINFMT).filter((name) => name !== 'register' && name !== 'status');
  } catch {
    return false;
  }
  return names.some((name) => {
    const text = readFileSync(join(BINFMT, name), 'utf8');
    const field = (key: string): string | undefined => new RegExp(`^${key} (\\S+)$`, 'm').exec(text)?.[1];
    const magic = Buffer.from(field('magic') ?? '', 'hex');
    const mask = field('mask') ? Buffer.from(field('mask')!, 'hex') : Buffer.alloc(magic.length, 0xff);
    if (!/^enabled$/m.test(text) || field('offset') !== '0' || magic.length === 0 || magic.length > header.length) return false;
    return [...magic].every((byte, i) => (header[i]! & mask[i]!) === (byte & mask[i]!));
  });
}

/** Stops a build before its first step when one of its RUN steps needs a platform this machine cannot run. */
export function checkEmulation(plan: BuildPlan): void {
  const host = hostPlatform();
  for (const index of plan.order) {
    const { platform, stage } = plan.stages[index]!;
    if (platform.architecture === host.architecture || !stage.instructions.some((instruction) => instruction.kind === 'RUN')) continue;
    if (hasHandler(platform.architecture)) continue;
    throw new BuildError(
      `RUN for ${formatPlatform(platform)} needs an emulator, and binfmt_misc has no handler for ${platform.architecture} programs (${BINFMT}). `
      + 'On Debian and Ubuntu: apt-get install qemu-user-static binfmt-support (and, where the directory is empty, mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc); '
      + 'on GitHub Actions: the docker/setup-qemu-action step. A Dockerfile that cross-compiles (FROM --platform=$BUILDPLATFORM, then GOOS=$TARGETOS GOARCH=$TARGETARCH) needs none',
    );
  }
}
