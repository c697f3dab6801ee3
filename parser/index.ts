// The Dockerfile front end: text in, typed and checked instructions out; BuildKit's rules for
// variable expansion and for stages and their variables.
export { DockerfileError, type Position, type SourceRange } from './errors.ts';
export { parseDockerfile, type Heredoc, type Node, type ParsedDockerfile } from './syntax.ts';
export { goQuote } from './quote.ts';
export { splitCsv } from './csv.ts';
export type * from './instructions.ts';
export { parseInstructions, type Dockerfile, type Stage } from './dockerfile.ts';
export { checkDockerfile, parseCheckDirective, type CheckDirective, type CheckWarning } from './checks.ts';
export { expandInstruction } from './expand.ts';
export {
  planBuild, dependencyOrder, StageVariables, unusedBuildArgs, resolveStageRef, hostPlatform, parsePlatform, parsePlatforms, formatPlatform, PROXY_ARGS,
  type BuildOptions, type BuildPlan, type PlannedStage, type Platform, type StageBase,
} from './stages.ts';
export { expandWord, expandWords, ShellExpansionError, type Env } from './shell.ts';
