// A Dockerfile as a whole: the global ARGs before the first FROM, then the stages.
import { sourceError } from './errors.ts';
import { toInstructions, type ArgInstruction, type FromInstruction, type Instruction } from './instructions.ts';
import { parseDockerfile, type Directives } from './syntax.ts';

export interface Stage {
  index: number;
  /** The lower-cased name given by `FROM ... AS name`. */
  name?: string;
  from: FromInstruction;
  instructions: Instruction[];
}

export interface Dockerfile {
  file: string;
  directives: Directives;
  /** ARGs before the first FROM: visible to FROM lines, and in a stage only when redeclared. */
  globalArgs: ArgInstruction[];
  stages: Stage[];
  /** The named stages, by name. */
  stagesByName: ReadonlyMap<string, Stage>;
  /** The source lines, for messages about later steps (expansion, stage references). */
  lines: string[];
}

export function parseInstructions(text: string, file = 'Dockerfile'): Dockerfile {
  const parsed = parseDockerfile(text, file);
  const globalArgs: ArgInstruction[] = [];
  const stages: Stage[] = [];
  for (const instruction of toInstructions(parsed)) {
    if (instruction.kind === 'FROM') {
      stages.push({ index: stages.length, name: instruction.stageName, from: instruction, instructions: [] });
    } else if (stages.length > 0) {
      stages[stages.length - 1]!.instructions.push(instruction);
    } else if (instruction.kind === 'ARG') {
      globalArgs.push(instruction);
    } else {
      sourceError(parsed, instruction.range.start, `${instruction.kind} comes before the first FROM: only ARG may`);
    }
  }
  const names = new Map<string, Stage>();
  for (const stage of stages) {
    if (stage.name === undefined) continue;
    if (names.has(stage.name)) {
      sourceError(parsed, stage.from.range.start, `duplicate stage name "${stage.name}" (first used on line ${names.get(stage.name)!.from.range.start.line})`);
    }
    names.set(stage.name, stage);
  }
  return { file, directives: parsed.directives, globalArgs, stages, stagesByName: names, lines: parsed.lines };
}
