// Parser benchmark: a generated 10,000-line Dockerfile through parse, typing, planning and expansion.
import { parseInstructions, planBuild, StageVariables } from '../../parser/index.ts';

function generate(lines: number): string {
  const out = ['# syntax=docker/dockerfile:1', 'ARG BASE=busybox', 'FROM ${BASE} AS base'];
  for (let i = 0; out.length < lines; i++) {
    switch (i % 8) {
      case 0: out.push(`ARG V${i}=${i}`); break;
      case 1: out.push(`ENV E${i}="value $V${i - 1}" PATH=/opt/${i}:$PATH`); break;
      case 2: out.push(`RUN --mount=type=cache,target=/cache/${i} set -e \\`, `    && echo ${i} \\`, '    # a comment inside', `    && touch /f${i}`); break;
      case 3: out.push(`COPY --chown=1000:1000 --chmod=0644 src/${i} /app/\${E${i - 2}}/`); break;
      case 4: out.push(`LABEL l${i}="x y" other.${i}=$V${i - 4}`); break;
      case 5: out.push('RUN <<EOF', `echo heredoc ${i}`, 'EOF'); break;
      case 6: out.push(`WORKDIR /w/\${V${i - 6}:-none}`); break;
      default: out.push(`CMD ["/bin/app", "--n=${i}"]`);
    }
  }
  return out.join('\n') + '\n';
}

export function benchParser(): { lines: number; bytes: number; ms: number[] } {
  const text = generate(10_000);
  const ms: number[] = [];
  for (let run = 0; run < 5; run++) {
    const start = performance.now();
    const plan = planBuild(parseInstructions(text));
    const variables = new StageVariables(plan, ['PATH=/usr/bin:/bin']);
    for (const instruction of plan.stages[plan.target]!.stage.instructions) variables.expand(instruction);
    ms.push(performance.now() - start);
  }
  return { lines: text.split('\n').length - 1, bytes: text.length, ms };
}
