// The `hoist` command line, shaped like `docker buildx build` so users need no new habits: the
// commands by name, and how their failures are printed. Exit codes: 0 success, 1 build failure, 2 usage error.
import { VERSION, help } from './cli-help.ts';
import { boundedLines, BuildError, UsageError } from './errors.ts';

/**
 * ENOSPC or EDQUOT, however deep it came from (a blob, index.json, a lock, a cache record): one line
 * that says the disk is full and where (the file system of the path the error names, else of the
 * store), keeping the Dockerfile location the error has.
 */
async function diskFull(error: Error): Promise<string | undefined> {
  const code = (error as NodeJS.ErrnoException).code;
  const quota = code === 'EDQUOT' || /\bEDQUOT\b/.test(error.message);
  if (!quota && code !== 'ENOSPC' && !/\bENOSPC\b/.test(error.message)) return undefined;
  const location = error instanceof BuildError && error.location ? `${error.location.file}:${error.location.line}: ` : '';
  const named = /'(\/[^']+)'/.exec(error.message)?.[1];
  const [{ openedStoreRoot }, { diskFullMessage }] = await Promise.all([import('./cli-options.ts'), import('./disk.ts')]);
  const storeRoot = openedStoreRoot();
  const at = named ?? storeRoot;
  if (!at) return undefined;
  return `${location}${diskFullMessage(at, named ?? `the store ${storeRoot}`, quota)} (${error.message})`;
}

/** Each command's code, loaded when it runs: `hoist --version` loads none of it. */
const COMMANDS: Record<string, () => Promise<(args: string[]) => Promise<number>>> = {
  build: async () => (await import('./cli-build.ts')).buildCommand,
  images: async () => (await import('./cli-images.ts')).imagesCommand,
  inspect: async () => (await import('./cli-images.ts')).inspectCommand,
  save: async () => (await import('./cli-images.ts')).saveCommand,
  rmi: async () => (await import('./cli-images.ts')).rmiCommand,
  load: async () => (await import('./cli-images.ts')).loadCommand,
  push: async () => (await import('./cli-images.ts')).pushCommand,
  pull: async () => (await import('./cli-images.ts')).pullCommand,
  login: async () => (await import('./cli-images.ts')).loginCommand,
  logout: async () => (await import('./cli-images.ts')).logoutCommand,
  prune: async () => (await import('./cli-images.ts')).pruneCommand,
};

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === '--version' || command === 'version') {
      process.stdout.write(`hoist ${VERSION}\n`);
      return 0;
    }
    if (command === undefined || command === '--help' || command === '-h' || command === 'help') return help('main');
    const load = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined; // not `constructor`
    if (!load) throw new UsageError(`unknown command "${command}" (see 'hoist --help')`);
    return await (await load())(rest);
  } catch (error) {
    // Each line bounded: a message may carry a megabyte of outside text (a path, a registry's answer).
    const report = (text: string): void => void process.stderr.write(`${boundedLines(text)}\n`);
    if (error instanceof UsageError) {
      report(`hoist: ${error.message}`);
      return 2;
    }
    const [{ DockerfileError }, { errorAnnotation, inGithubActions }] = await Promise.all([import('../parser/index.ts'), import('./actions.ts')]);
    if (inGithubActions()) report(errorAnnotation(error as Error));
    if (error instanceof DockerfileError) report(error.format());
    else if (process.env.HOIST_DEBUG) report(`${error instanceof BuildError ? `${error.summary}\n` : ''}${(error as Error).stack}`);
    else {
      // The Dockerfile's lines around a failed instruction first, as BuildKit shows them: the message stays the last line.
      const excerpt = error instanceof BuildError ? error.location?.excerpt : undefined;
      report(`${excerpt ? `${excerpt}\n` : ''}hoist: ${(await diskFull(error as Error)) ?? (error instanceof BuildError ? error.summary : (error as Error).message)}`);
    }
    return 1;
  }
}
