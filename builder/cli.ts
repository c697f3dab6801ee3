// The `hoist` command line, shaped like `docker buildx build` so users need no new habits: the
// commands by name, and how their failures are printed. Exit codes: 0 success, 1 build failure, 2 usage error.
import { DockerfileError } from '../parser/index.ts';
import { errorAnnotation, inGithubActions } from './actions.ts';
import { BuildError } from './errors.ts';
import { diskFullMessage } from './disk.ts';
import { openedStoreRoot, UsageError } from './cli-options.ts';
import { VERSION, help } from './cli-help.ts';
import { buildCommand } from './cli-build.ts';
import { pushCommand, pullCommand, loginCommand, logoutCommand, imagesCommand, inspectCommand, saveCommand, rmiCommand, pruneCommand, loadCommand } from './cli-images.ts';

/**
 * ENOSPC or EDQUOT, however deep it came from (a blob, index.json, a lock, a cache record): one line
 * that says the disk is full and where (the file system of the path the error names, else of the
 * store), keeping the Dockerfile location the error has.
 */
function diskFull(error: Error): string | undefined {
  const code = (error as NodeJS.ErrnoException).code;
  const quota = code === 'EDQUOT' || /\bEDQUOT\b/.test(error.message);
  if (!quota && code !== 'ENOSPC' && !/\bENOSPC\b/.test(error.message)) return undefined;
  const location = error instanceof BuildError && error.location ? `${error.location.file}:${error.location.line}: ` : '';
  const named = /'(\/[^']+)'/.exec(error.message)?.[1];
  const storeRoot = openedStoreRoot();
  const at = named ?? storeRoot;
  if (!at) return undefined;
  return `${location}${diskFullMessage(at, named ?? `the store ${storeRoot}`, quota)} (${error.message})`;
}

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  build: buildCommand, images: imagesCommand, inspect: inspectCommand, save: saveCommand, rmi: rmiCommand, load: loadCommand,
  push: pushCommand, pull: pullCommand, login: loginCommand, logout: logoutCommand, prune: pruneCommand,
};

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === '--version' || command === 'version') {
      process.stdout.write(`hoist ${VERSION}\n`);
      return 0;
    }
    if (command === undefined || command === '--help' || command === '-h' || command === 'help') return help('main');
    const run = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined; // not `constructor`
    if (!run) throw new UsageError(`unknown command "${command}" (see 'hoist --help')`);
    return await run(rest);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`hoist: ${error.message}\n`);
      return 2;
    }
    if (inGithubActions()) process.stderr.write(`${errorAnnotation(error as Error)}\n`);
    if (error instanceof DockerfileError) process.stderr.write(`${error.format()}\n`);
    else if (process.env.HOIST_DEBUG) process.stderr.write(`${error instanceof BuildError ? `${error.summary}\n` : ''}${(error as Error).stack}\n`);
    else process.stderr.write(`hoist: ${diskFull(error as Error) ?? (error instanceof BuildError ? error.summary : (error as Error).message)}\n`);
    return 1;
  }
}
