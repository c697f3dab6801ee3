// BuildKit's build checks (`docker buildx build --check`): the rules by their names, with BuildKit's
// messages, each found at its Dockerfile line. `# check=skip=A,B;error=true` chooses which run
// and whether they fail the build.
import type { Dockerfile } from './dockerfile.ts';
import type { Instruction } from './instructions.ts';
import { PROXY_ARGS } from './stages.ts';

export interface CheckWarning {
  rule: string;
  message: string;
  /** The Dockerfile lines it is about (from 1). */
  line: number;
  endLine: number;
  /** The rule's page in Docker's documentation. */
  url: string;
}

/** What the `check` directive (or BUILDKIT_DOCKERFILE_CHECK) says: rules skipped, and whether a warning fails the build. */
export interface CheckDirective {
  skip: Set<string>;
  error: boolean;
}

/** `skip=JSONArgsRecommended,StageNameCasing;error=true`; `skip=all` skips every rule. */
export function parseCheckDirective(text: string | undefined): CheckDirective {
  const directive: CheckDirective = { skip: new Set(), error: false };
  for (const part of (text ?? '').split(';')) {
    const [key = '', value = ''] = part.split('=').map((each) => each.trim());
    if (key === 'skip') for (const rule of value.split(',')) if (rule.trim()) directive.skip.add(rule.trim());
    if (key === 'error') directive.error = value.toLowerCase() === 'true';
  }
  return directive;
}

const kebab = (rule: string): string => rule.replace(/([a-z0-9])([A-Z])/g, '$1-$2').replace(/([A-Z])([A-Z][a-z])/g, '$1-$2').toLowerCase();

/** ARG and ENV names that look like they hold a secret, as BuildKit's rule matches them. */
const SECRET_NAME = /(?:^|_)(?:apikey|auth|credential|credentials|key|password|pword|passwd|secret|token)(?:_|$)/i;
const NOT_SECRET = /(?:^|_)(?:public|file)(?:_|$)/i;
/** The args every stage has without declaring them. */
const PREDEFINED = new Set([
  ...PROXY_ARGS, 'TARGETPLATFORM', 'TARGETOS', 'TARGETARCH', 'TARGETVARIANT', 'BUILDPLATFORM', 'BUILDOS', 'BUILDARCH', 'BUILDVARIANT',
  'BUILDKIT_SYNTAX', 'BUILDKIT_DOCKERFILE_CHECK',
]);

/** `$NAME` and `${NAME...}` in text, not after the escape character. */
function variablesIn(text: string, escape: string): string[] {
  const names: string[] = [];
  for (let i = 0; i < text.length; i++) {
    if (text[i] === escape) i++;
    else if (text[i] === '$') {
      const match = /^(?:\{([A-Za-z_][A-Za-z0-9_]*)|([A-Za-z_][A-Za-z0-9_]*))/.exec(text.slice(i + 1));
      if (match) names.push(match[1] ?? match[2]!);
    }
  }
  return names;
}

/** The first word of an instruction as written, and the rest. */
const words = (instruction: Instruction): string[] => instruction.original.trim().split(/\s+/);

/**
 * The warnings of BuildKit's rules for a Dockerfile. `baseEnv` gives the names a stage's base image
 * defines when it is an image (undefined when not known: undefined-variable checks of that stage
 * then only report names no image could define, as none do).
 */
export function checkDockerfile(dockerfile: Dockerfile, options: { baseEnv?: (image: string) => string[] | undefined; buildArgs?: ReadonlySet<string> } = {}): CheckWarning[] {
  const warnings: CheckWarning[] = [];
  const warn = (rule: string, message: string, instruction: { range: { start: { line: number }; end: { line: number } } }): void => {
    warnings.push({ rule, message, line: instruction.range.start.line, endLine: instruction.range.end.line, url: `https://docs.docker.com/go/dockerfile/rule/${kebab(rule)}/` });
  };
  const escape = dockerfile.directives.escape;
  const all = [...dockerfile.globalArgs, ...dockerfile.stages.flatMap((stage) => [stage.from, ...stage.instructions])];

  // ConsistentInstructionCasing: the majority's case, upper or lower; mixed case never matches it.
  const keywords = all.map((instruction) => words(instruction)[0]!);
  const upper = keywords.filter((word) => word === word.toUpperCase()).length;
  const majority = upper >= keywords.length - upper ? 'uppercase' : 'lowercase';
  for (const [i, instruction] of all.entries()) {
    const keyword = keywords[i]!;
    if (keyword !== (majority === 'uppercase' ? keyword.toUpperCase() : keyword.toLowerCase())) {
      warn('ConsistentInstructionCasing', `Command '${keyword}' should match the case of the command majority (${majority})`, instruction);
    }
  }

  // NoEmptyContinuation: a blank line inside an instruction continued over several lines (a heredoc's are its text).
  for (const instruction of all) {
    if ((instruction.kind === 'RUN' && instruction.heredocs.length > 0) || ((instruction.kind === 'COPY' || instruction.kind === 'ADD') && instruction.inlineSources.length > 0)) continue;
    for (let line = instruction.range.start.line + 1; line < instruction.range.end.line; line++) {
      if (dockerfile.lines[line - 1]!.trim() === '') {
        warnings.push({ rule: 'NoEmptyContinuation', message: 'Empty continuation line', line, endLine: line, url: `https://docs.docker.com/go/dockerfile/rule/${kebab('NoEmptyContinuation')}/` });
      }
    }
  }

  const globalNames = new Set(dockerfile.globalArgs.flatMap((arg) => arg.args.map((each) => each.name)));
  const seenStages = new Set<string>();
  const stageNames = new Map<number, Set<string>>();
  for (const stage of dockerfile.stages) {
    const from = stage.from;
    const fromWords = words(from);
    const asWord = fromWords.find((word, i) => i > 1 && /^as$/i.test(word));
    const asIndex = asWord ? fromWords.indexOf(asWord) : -1;
    const writtenName = asIndex > 0 ? fromWords[asIndex + 1] : undefined;
    if (asWord && (fromWords[0] === fromWords[0]!.toUpperCase()) !== (asWord === asWord.toUpperCase())) {
      warn('FromAsCasing', `'${asWord}' and '${fromWords[0]}' keywords' casing do not match`, from);
    }
    if (writtenName && writtenName !== writtenName.toLowerCase()) warn('StageNameCasing', `Stage name '${writtenName}' should be lowercase`, from);
    if (stage.name && ['scratch', 'context'].includes(stage.name)) warn('ReservedStageName', `'${stage.name}' is reserved and should not be used as a stage name`, from);
    if (stage.name && seenStages.has(stage.name)) warn('DuplicateStageName', `Duplicate stage name "${stage.name}", stage names should be unique`, from);
    if (stage.name) seenStages.add(stage.name);
    for (const name of variablesIn(from.image, escape)) {
      if (!globalNames.has(name) && !PREDEFINED.has(name) && !options.buildArgs?.has(name)) warn('UndefinedArgInFrom', `FROM argument '${name}' is not declared`, from);
    }
    if (from.platform !== undefined) {
      if (from.platform === '$TARGETPLATFORM' || from.platform === '${TARGETPLATFORM}') {
        warn('RedundantTargetPlatform', 'Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior', from);
      } else if (!from.platform.includes('$')) {
        // A stage named for its platform (build-amd64) means the constant, as BuildKit allows.
        const [os = '', architecture = ''] = from.platform.split('/');
        const named = stage.name !== undefined && (stage.name.includes(os) || stage.name.includes(architecture));
        if (!named) warn('FromPlatformFlagConstDisallowed', `FROM --platform flag should not use constant value "${from.platform}"`, from);
      }
    }

    // What the stage's instructions may name: its base stage's names, the base image's, its own ARGs and ENVs.
    const base = dockerfile.stagesByName.get(from.image.toLowerCase());
    const baseKnown = base && base.index < stage.index ? stageNames.get(base.index) : undefined;
    const imageEnv = base || from.image.toLowerCase() === 'scratch' ? [] : options.baseEnv?.(from.image);
    const defined = new Set<string>([...PREDEFINED, ...(baseKnown ?? []), ...(imageEnv ?? ['PATH'])]);
    const knowsBase = baseKnown !== undefined || imageEnv !== undefined || from.image.toLowerCase() === 'scratch';
    const earlier = new Map<string, Instruction>();
    let absoluteWorkdir = false;
    for (const instruction of stage.instructions) {
      if (knowsBase && instruction.kind !== 'RUN' && instruction.kind !== 'ONBUILD') {
        const text = instruction.original.trim().slice(words(instruction)[0]!.length);
        for (const name of variablesIn(text, escape)) {
          const declaredHere = instruction.kind === 'ENV' && instruction.pairs.some((pair) => pair.key === name);
          if (!defined.has(name) && !declaredHere) warn('UndefinedVar', `Usage of undefined variable '$${name}'`, instruction);
        }
      }
      if (instruction.kind === 'ARG') {
        for (const { name } of instruction.args) {
          defined.add(name);
          if (SECRET_NAME.test(name) && !NOT_SECRET.test(name)) warn('SecretsUsedInArgOrEnv', `Do not use ARG or ENV instructions for sensitive data (ARG "${name}")`, instruction);
        }
      }
      if (instruction.kind === 'ENV') {
        for (const { key } of instruction.pairs) {
          defined.add(key);
          if (SECRET_NAME.test(key) && !NOT_SECRET.test(key)) warn('SecretsUsedInArgOrEnv', `Do not use ARG or ENV instructions for sensitive data (ENV "${key}")`, instruction);
        }
      }
      if ((instruction.kind === 'ENV' || instruction.kind === 'LABEL') && !(words(instruction)[1] ?? '').includes('=')) {
        warn('LegacyKeyValueFormat', `"${instruction.kind} key=value" should be used instead of legacy "${instruction.kind} key value" format`, instruction);
      }
      if ((instruction.kind === 'CMD' || instruction.kind === 'ENTRYPOINT') && instruction.command.form === 'shell') {
        warn('JSONArgsRecommended', `JSON arguments recommended for ${instruction.kind} to prevent unintended behavior related to OS signals`, instruction);
      }
      if (instruction.kind === 'MAINTAINER') warn('MaintainerDeprecated', 'Maintainer instruction is deprecated in favor of using label', instruction);
      if (instruction.kind === 'WORKDIR') {
        if (!absoluteWorkdir && !instruction.path.startsWith('/') && !instruction.path.startsWith('$')) {
          warn('WorkdirRelativePath', `Relative workdir "${instruction.path}" can have unexpected results if the base image changes`, instruction);
        }
        absoluteWorkdir ||= instruction.path.startsWith('/');
      }
      if (instruction.kind === 'EXPOSE') {
        for (const port of instruction.ports) {
          const protocol = port.split('/')[1];
          if (protocol && protocol !== protocol.toLowerCase()) warn('ExposeProtoCasing', `Defined protocol '${port}' in EXPOSE instruction should be lowercase`, instruction);
        }
      }
      // Every one but the last of these is overridden: each earlier one is reported, as BuildKit does.
      if (instruction.kind === 'CMD' || instruction.kind === 'ENTRYPOINT' || instruction.kind === 'HEALTHCHECK') {
        const before = earlier.get(instruction.kind);
        if (before) warn('MultipleInstructionsDisallowed', `Multiple ${instruction.kind} instructions should not be used in the same stage because only the last one will be used`, before);
        earlier.set(instruction.kind, instruction);
      }
    }
    stageNames.set(stage.index, defined);
  }
  return warnings.sort((a, b) => a.line - b.line);
}
