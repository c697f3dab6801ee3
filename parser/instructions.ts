// The typed instruction model: each parse-tree node checked and turned into one Instruction, with
// its flags validated and its source range kept. Values stay unexpanded here; see expand.ts.
import { splitCsv } from './csv.ts';
import { sourceError, type Position, type SourceRange } from './errors.ts';
import type { Flag, Heredoc, Node, ParsedDockerfile } from './syntax.ts';

export type Command = { form: 'shell'; script: string } | { form: 'exec'; argv: string[] };

export interface KeyValue {
  key: string;
  value: string;
}

export type MountType = 'bind' | 'cache' | 'tmpfs' | 'secret' | 'ssh';

/** A `RUN --mount=...` spec; values are unexpanded. */
export interface Mount {
  type: MountType;
  target?: string;
  source?: string;
  from?: string;
  readonly?: boolean;
  id?: string;
  sharing?: 'shared' | 'private' | 'locked';
  mode?: string;
  uid?: string;
  gid?: string;
  required?: boolean;
  size?: string;
  env?: string;
}

/** A file written inline by `COPY <<EOF /dest`. */
export interface InlineSource {
  name: string;
  content: string;
  expand: boolean;
}

interface Located {
  range: SourceRange;
  /** The instruction's logical line as written (continuations joined). */
  original: string;
}

export interface FromInstruction extends Located { kind: 'FROM'; image: string; stageName?: string; platform?: string }
export interface RunInstruction extends Located {
  kind: 'RUN';
  command: Command;
  mounts: Mount[];
  network?: string;
  security?: string;
  heredocs: Heredoc[];
}
export interface CmdInstruction extends Located { kind: 'CMD'; command: Command }
export interface EntrypointInstruction extends Located { kind: 'ENTRYPOINT'; command: Command }
export interface ShellInstruction extends Located { kind: 'SHELL'; argv: string[] }
export interface LabelInstruction extends Located { kind: 'LABEL'; pairs: KeyValue[] }
export interface EnvInstruction extends Located { kind: 'ENV'; pairs: KeyValue[] }
export interface MaintainerInstruction extends Located { kind: 'MAINTAINER'; name: string }
export interface ExposeInstruction extends Located { kind: 'EXPOSE'; ports: string[] }
interface FileInstruction extends Located {
  sources: string[];
  inlineSources: InlineSource[];
  dest: string;
  chown?: string;
  chmod?: string;
  link: boolean;
  parents: boolean;
  exclude: string[];
}
export interface CopyInstruction extends FileInstruction { kind: 'COPY'; from?: string }
export interface AddInstruction extends FileInstruction { kind: 'ADD'; keepGitDir: boolean; checksum?: string; unpack?: boolean }
export interface VolumeInstruction extends Located { kind: 'VOLUME'; paths: string[] }
export interface UserInstruction extends Located { kind: 'USER'; user: string }
export interface WorkdirInstruction extends Located { kind: 'WORKDIR'; path: string }
export interface ArgInstruction extends Located { kind: 'ARG'; args: { name: string; value?: string }[] }
export interface OnbuildInstruction extends Located { kind: 'ONBUILD'; trigger: Instruction; expression: string }
export interface StopsignalInstruction extends Located { kind: 'STOPSIGNAL'; signal: string }
export interface HealthcheckInstruction extends Located {
  kind: 'HEALTHCHECK';
  /** As in the image config: `["NONE"]`, `["CMD", ...argv]` or `["CMD-SHELL", script]`. */
  test: string[];
  /** Durations in nanoseconds, as the image config stores them. */
  interval?: number;
  timeout?: number;
  startPeriod?: number;
  startInterval?: number;
  retries?: number;
}

export type Instruction =
  | FromInstruction | RunInstruction | CmdInstruction | EntrypointInstruction | ShellInstruction
  | LabelInstruction | EnvInstruction | MaintainerInstruction | ExposeInstruction | CopyInstruction
  | AddInstruction | VolumeInstruction | UserInstruction | WorkdirInstruction | ArgInstruction
  | OnbuildInstruction | StopsignalInstruction | HealthcheckInstruction;

export const INSTRUCTION_NAMES = [
  'ADD', 'ARG', 'CMD', 'COPY', 'ENTRYPOINT', 'ENV', 'EXPOSE', 'FROM', 'HEALTHCHECK', 'LABEL',
  'MAINTAINER', 'ONBUILD', 'RUN', 'SHELL', 'STOPSIGNAL', 'USER', 'VOLUME', 'WORKDIR',
] as const;

type FlagKind = 'string' | 'bool' | 'list';
const FILE_FLAGS = { chown: 'string', chmod: 'string', link: 'bool', parents: 'bool', exclude: 'list' } as const;
const FLAG_SPECS: Record<string, Record<string, FlagKind>> = {
  from: { platform: 'string' },
  run: { mount: 'list', network: 'string', security: 'string' },
  copy: { ...FILE_FLAGS, from: 'string' },
  add: { ...FILE_FLAGS, 'keep-git-dir': 'bool', checksum: 'string', unpack: 'bool' },
  healthcheck: { interval: 'string', timeout: 'string', 'start-period': 'string', 'start-interval': 'string', retries: 'string' },
};

type FlagValues = Map<string, string | boolean | string[]>;

/** Turns every parse-tree node into a typed instruction, in order. */
export function toInstructions(parsed: ParsedDockerfile): Instruction[] {
  const fail = (message: string, position: Position): never => sourceError(parsed, position, message);
  return parsed.nodes.map((node) => toInstruction(node, fail));
}

type Fail = (message: string, position: Position) => never;

function toInstruction(node: Node, fail: Fail): Instruction {
  const name = node.keyword.toUpperCase();
  const at = { range: node.range, original: node.original };
  const args = node.args;
  const atArgs = (message: string): never => fail(message, node.argsPosition);
  const atLeast = (count: number): void => {
    if (args.length < count) atArgs(`${name} requires at least ${count === 1 ? 'one argument' : `${count} arguments`}`);
  };
  const exactlyOne = (): string => {
    if (args.length !== 1) atArgs(`${name} requires exactly one argument`);
    return args[0]!;
  };

  if (!(INSTRUCTION_NAMES as readonly string[]).includes(name)) {
    const suggestion = closest(name, INSTRUCTION_NAMES);
    fail(`unknown instruction: ${node.keywordText}${suggestion ? ` (did you mean ${suggestion}?)` : ''}`, node.range.start);
  }
  const flags = parseFlags(node.keyword, node.flags, fail);
  const str = (key: string): string | undefined => flags.get(key) as string | undefined;
  const bool = (key: string): boolean | undefined => flags.get(key) as boolean | undefined;
  const list = (key: string): string[] => (flags.get(key) as string[] | undefined) ?? [];

  switch (name) {
    case 'FROM': {
      if (args.length !== 1 && !(args.length === 3 && args[1]!.toLowerCase() === 'as')) {
        atArgs('FROM requires either one argument, or three: FROM <image> AS <name>');
      }
      const stageName = args[2]?.toLowerCase();
      if (stageName !== undefined && !/^[a-z][a-z0-9\-_.]*$/.test(stageName)) {
        atArgs(`invalid name for build stage: "${args[2]}", name can't start with a number or contain symbols`);
      }
      return { kind: 'FROM', ...at, image: args[0]!, stageName, platform: str('platform') };
    }
    case 'RUN': {
      atLeast(1);
      const network = str('network');
      if (network !== undefined && !['default', 'none', 'host'].includes(network)) {
        atArgs(`unsupported network mode: ${network} (use default, none or host)`);
      }
      const security = str('security');
      if (security !== undefined && !['sandbox', 'insecure'].includes(security)) {
        atArgs(`unsupported security mode: ${security} (use sandbox or insecure)`);
      }
      const mounts = list('mount').map((spec) => parseMount(spec, atArgs));
      return { kind: 'RUN', ...at, command: command(node), mounts, network, security, heredocs: node.heredocs };
    }
    case 'CMD':
    case 'ENTRYPOINT':
      return { kind: name, ...at, command: command(node) };
    case 'SHELL':
      if (!node.json) atArgs('SHELL requires the arguments to be in JSON form');
      atLeast(1);
      return { kind: 'SHELL', ...at, argv: args };
    case 'LABEL':
    case 'ENV': {
      atLeast(1);
      const pairs: KeyValue[] = [];
      for (let i = 0; i < args.length; i += 3) {
        if (args[i] === '') atArgs(`${name} names can not be blank`);
        pairs.push({ key: args[i]!, value: args[i + 1]! });
      }
      return { kind: name, ...at, pairs };
    }
    case 'MAINTAINER':
      return { kind: 'MAINTAINER', ...at, name: exactlyOne() };
    case 'EXPOSE':
      atLeast(1);
      return { kind: 'EXPOSE', ...at, ports: args };
    case 'COPY':
    case 'ADD': {
      if (args.length < 2) atArgs(`${name} requires at least two arguments, but only ${args.length === 1 ? 'one was' : 'none were'} provided. Destination could not be determined`);
      const inlineSources: InlineSource[] = [];
      const sources: string[] = [];
      const heredocs = [...node.heredocs];
      for (const source of args.slice(0, -1)) {
        const heredoc = /^\d*<<-?.+/.test(source) && !node.json ? heredocs.shift() : undefined;
        if (heredoc) inlineSources.push({ name: heredoc.name, content: heredoc.content, expand: heredoc.expand });
        else sources.push(source);
      }
      const file = {
        ...at, sources, inlineSources, dest: args[args.length - 1]!, chown: str('chown'), chmod: str('chmod'),
        link: bool('link') ?? false, parents: bool('parents') ?? false, exclude: list('exclude'),
      };
      if (name === 'COPY') return { kind: 'COPY', ...file, from: str('from') };
      return { kind: 'ADD', ...file, keepGitDir: bool('keep-git-dir') ?? false, checksum: str('checksum'), unpack: bool('unpack') };
    }
    case 'VOLUME':
      atLeast(1);
      if (args.some((path) => path.trim() === '')) atArgs('VOLUME specified can not be an empty string');
      return { kind: 'VOLUME', ...at, paths: args };
    case 'USER':
      return { kind: 'USER', ...at, user: exactlyOne() };
    case 'WORKDIR':
      return { kind: 'WORKDIR', ...at, path: exactlyOne() };
    case 'STOPSIGNAL':
      return { kind: 'STOPSIGNAL', ...at, signal: exactlyOne() };
    case 'ARG':
      atLeast(1);
      return {
        kind: 'ARG', ...at, args: args.map((word) => {
          const equals = word.indexOf('=');
          const argName = equals < 0 ? word : word.slice(0, equals);
          if (argName === '') atArgs('ARG names can not be blank');
          return equals < 0 ? { name: argName } : { name: argName, value: word.slice(equals + 1) };
        }),
      };
    case 'ONBUILD': {
      if (!node.trigger) return atArgs('ONBUILD requires at least one argument');
      const triggerName = node.trigger.keyword.toUpperCase();
      if (triggerName === 'ONBUILD') atArgs('chaining ONBUILD via `ONBUILD ONBUILD` is not allowed');
      if (triggerName === 'FROM' || triggerName === 'MAINTAINER') atArgs(`${triggerName} is not allowed as an ONBUILD trigger`);
      return { kind: 'ONBUILD', ...at, trigger: toInstruction(node.trigger, fail), expression: node.trigger.original.trim() };
    }
    case 'HEALTHCHECK':
      return healthcheck(node, flags, at, atArgs);
  }
  throw new Error(`unreachable: ${name}`);
}

function command(node: Node): Command {
  if (node.json) return { form: 'exec', argv: node.args };
  return { form: 'shell', script: node.args[0] ?? '' };
}

function healthcheck(node: Node, flags: FlagValues, at: Located, fail: (message: string) => never): HealthcheckInstruction {
  const [type = '', ...rest] = node.args;
  const upper = type.toUpperCase();
  if (upper === 'NONE') {
    if (rest.length > 0) fail('HEALTHCHECK NONE takes no arguments');
    if (flags.size > 0) fail('HEALTHCHECK NONE takes no flags');
    return { kind: 'HEALTHCHECK', ...at, test: ['NONE'] };
  }
  if (upper !== 'CMD') fail(`unknown type "${type}" in HEALTHCHECK (try CMD)`);
  if (rest.length === 0) fail('HEALTHCHECK CMD requires a command');
  const test = node.json ? ['CMD', ...rest] : ['CMD-SHELL', rest[0]!];
  const duration = (key: string): number | undefined => {
    const text = flags.get(key) as string | undefined;
    if (text === undefined) return undefined;
    const value = parseGoDuration(text);
    if (value === undefined) fail(`invalid duration for --${key}: "${text}"`);
    if (value! !== 0 && value! < 1_000_000) fail(`--${key} cannot be less than 1ms`);
    return value;
  };
  const retriesText = flags.get('retries') as string | undefined;
  let retries: number | undefined;
  if (retriesText !== undefined) {
    retries = Number(retriesText);
    if (!/^-?\d+$/.test(retriesText)) fail(`invalid value for --retries: "${retriesText}"`);
    if (retries < 0) fail('--retries cannot be negative');
  }
  return {
    kind: 'HEALTHCHECK', ...at, test, interval: duration('interval'), timeout: duration('timeout'),
    startPeriod: duration('start-period'), startInterval: duration('start-interval'), retries,
  };
}

const DURATION_UNITS: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };

/** Go's time.ParseDuration, in nanoseconds; undefined when malformed. */
export function parseGoDuration(text: string): number | undefined {
  if (text === '0') return 0;
  if (!/^(\d+(\.\d*)?(ns|us|µs|ms|s|m|h))+$/.test(text)) return undefined;
  let total = 0;
  for (const [, number, , unit] of text.matchAll(/(\d+(\.\d*)?)(ns|us|µs|ms|s|m|h)/g)) {
    total += Number(number) * DURATION_UNITS[unit!]!;
  }
  return Math.round(total);
}

function parseFlags(keyword: string, flags: Flag[], fail: Fail): FlagValues {
  const spec = FLAG_SPECS[keyword] ?? {};
  const values: FlagValues = new Map();
  for (const flag of flags) {
    const body = flag.text.slice(2);
    const equals = body.indexOf('=');
    const key = equals < 0 ? body : body.slice(0, equals);
    const value = equals < 0 ? undefined : body.slice(equals + 1);
    // Own keys only: `--constructor` is no flag.
    const kind = Object.hasOwn(spec, key) ? spec[key] : undefined;
    if (!kind) fail(`unknown flag: --${key} (${keyword.toUpperCase()} takes ${listFlags(spec)})`, flag.position);
    if (kind !== 'list' && values.has(key)) fail(`duplicate flag specified: --${key}`, flag.position);
    if (kind === 'bool') {
      if (value !== undefined && !/^(true|false)$/i.test(value)) fail(`expecting boolean value for flag --${key}, not: ${value}`, flag.position);
      values.set(key, value === undefined || value.toLowerCase() === 'true');
    } else {
      if (value === undefined) fail(`missing a value on flag: --${key}`, flag.position);
      if (kind === 'string') values.set(key, value!);
      else if (values.has(key)) (values.get(key) as string[]).push(value!);
      else values.set(key, [value!]);
    }
  }
  return values;
}

function listFlags(spec: Record<string, FlagKind>): string {
  const names = Object.keys(spec).map((key) => `--${key}`);
  return names.length === 0 ? 'no flags' : names.join(', ');
}

const MOUNT_TYPES: MountType[] = ['bind', 'cache', 'tmpfs', 'secret', 'ssh'];

/** Parses `type=cache,target=/root/.cache,sharing=locked` (comma-separated, CSV quoting allowed). */
export function parseMount(spec: string, fail: (message: string) => never): Mount {
  let fields: string[] = [];
  try {
    fields = splitCsv(spec);
  } catch (error) {
    fail(`--mount=${spec}: ${(error as Error).message}`);
  }
  const typeField = fields.find((field) => field.toLowerCase().startsWith('type='));
  const type = (typeField?.slice(5).toLowerCase() ?? 'bind') as MountType;
  if (!MOUNT_TYPES.includes(type)) fail(`unsupported mount type "${type}" (use ${MOUNT_TYPES.join(', ')})`);
  const mount: Mount = { type };
  for (const field of fields) {
    const equals = field.indexOf('=');
    const key = (equals < 0 ? field : field.slice(0, equals)).toLowerCase();
    const value = equals < 0 ? undefined : field.slice(equals + 1);
    const flag = (): boolean => {
      if (value !== undefined && !/^(true|false)$/i.test(value)) fail(`invalid value for ${key} in --mount: "${value}"`);
      return value === undefined || value.toLowerCase() === 'true';
    };
    const text = (): string => {
      if (value === undefined) fail(`--mount option ${key} needs a value`);
      return value!;
    };
    switch (key) {
      case 'type': break;
      case 'target': case 'dst': case 'destination': mount.target = text(); break;
      case 'source': case 'src': mount.source = text(); break;
      case 'from': mount.from = text(); break;
      case 'readonly': case 'ro': mount.readonly = flag(); break;
      case 'readwrite': case 'rw': mount.readonly = !flag(); break;
      case 'id': mount.id = text(); break;
      case 'sharing': {
        const sharing = text();
        if (sharing !== 'shared' && sharing !== 'private' && sharing !== 'locked') fail(`unsupported sharing value "${sharing}" (use shared, private or locked)`);
        mount.sharing = sharing as Mount['sharing'];
        break;
      }
      case 'mode': mount.mode = text(); break;
      case 'uid': mount.uid = text(); break;
      case 'gid': mount.gid = text(); break;
      case 'required': mount.required = flag(); break;
      case 'size': mount.size = text(); break;
      case 'env': mount.env = text(); break;
      default: fail(`unexpected key '${key}' in '${field}'`);
    }
  }
  if (mount.target === undefined && type !== 'secret' && type !== 'ssh') fail('--mount needs a target');
  return mount;
}

/** Longer words get no suggestion: the edit distance takes time in the product of the lengths. */
const MAX_TYPO_LENGTH = 100;

/** The candidate nearest to `word` by edit distance, if it is close enough to be a likely typo. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  if (word.length > MAX_TYPO_LENGTH) return undefined;
  const allowed = Math.max(1, Math.floor(word.length / 3));
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    // The distance is at least the difference in length.
    if (Math.abs(candidate.length - word.length) > allowed) continue;
    const distance = editDistance(word.toUpperCase(), candidate.toUpperCase());
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  return bestDistance <= allowed ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}
