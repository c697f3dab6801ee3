// Variable expansion per instruction, where Docker expands: FROM, ADD, COPY, ENV, EXPOSE, LABEL,
// STOPSIGNAL, USER, VOLUME, WORKDIR, ARG defaults and RUN --mount options. RUN, CMD, ENTRYPOINT,
// SHELL and HEALTHCHECK commands are left to the shell; ONBUILD triggers expand when they run.
import type { Dockerfile } from './dockerfile.ts';
import { sourceError } from './errors.ts';
import type { Instruction, Mount } from './instructions.ts';
import { expandWord, ShellExpansionError, type Env } from './shell.ts';

export function expandInstruction<T extends Instruction>(dockerfile: Dockerfile, instruction: T, env: Env): T {
  const escape = dockerfile.directives.escape;
  const word = (text: string): string => expandWord(text, env, { escape });
  const optional = (text: string | undefined): string | undefined => (text === undefined ? undefined : word(text));
  try {
    return expandFields(instruction, word, optional, (text) => expandWord(text, env, { escape, processQuotes: false }));
  } catch (error) {
    if (!(error instanceof ShellExpansionError)) throw error;
    return sourceError(dockerfile, instruction.range.start, error.message);
  }
}

type Expand = (text: string) => string;

function expandFields<T extends Instruction>(instruction: T, word: Expand, optional: (text: string | undefined) => string | undefined, body: Expand): T {
  const i = instruction as Instruction;
  switch (i.kind) {
    case 'FROM':
      return { ...i, image: word(i.image), platform: optional(i.platform) } as T;
    case 'RUN':
      return { ...i, mounts: i.mounts.map((mount) => expandMount(mount, optional)) } as T;
    case 'ENV':
    case 'LABEL':
      return { ...i, pairs: i.pairs.map(({ key, value }) => ({ key: word(key), value: word(value) })) } as T;
    case 'ARG':
      return { ...i, args: i.args.map((arg) => ({ name: arg.name, value: optional(arg.value) })) } as T;
    case 'EXPOSE':
      return { ...i, ports: i.ports.map(word) } as T;
    case 'VOLUME':
      return { ...i, paths: i.paths.map(word) } as T;
    case 'USER':
      return { ...i, user: word(i.user) } as T;
    case 'WORKDIR':
      return { ...i, path: word(i.path) } as T;
    case 'STOPSIGNAL':
      return { ...i, signal: word(i.signal) } as T;
    case 'COPY':
    case 'ADD': {
      const common = {
        sources: i.sources.map(word),
        inlineSources: i.inlineSources.map((source) => (source.expand ? { ...source, content: body(source.content) } : source)),
        dest: word(i.dest),
        chown: optional(i.chown),
        chmod: optional(i.chmod),
        exclude: i.exclude.map(word),
      };
      if (i.kind === 'COPY') return { ...i, ...common, from: optional(i.from) } as T;
      return { ...i, ...common, checksum: optional(i.checksum) } as T;
    }
    default:
      return instruction;
  }
}

function expandMount(mount: Mount, optional: (text: string | undefined) => string | undefined): Mount {
  return {
    ...mount,
    target: optional(mount.target), source: optional(mount.source), from: optional(mount.from), id: optional(mount.id),
    mode: optional(mount.mode), uid: optional(mount.uid), gid: optional(mount.gid), size: optional(mount.size), env: optional(mount.env),
  };
}
