// Stage and variable semantics, as BuildKit applies them.
import { describe, expect, test } from 'vitest';
import {
  DockerfileError, parseInstructions, planBuild, StageVariables, unusedBuildArgs, type BuildOptions, type Instruction,
} from '../../parser/index.ts';

const plan = (text: string, options: BuildOptions = {}) => planBuild(parseInstructions(text), options);
const args = (entries: Record<string, string>) => new Map(Object.entries(entries));

/** Runs a stage's ARG/ENV instructions and returns the others, expanded. */
function walk(text: string, options: BuildOptions = {}, imageEnv: string[] = [], stage = -1) {
  const built = plan(text, options);
  const index = stage < 0 ? built.target : stage;
  const variables = new StageVariables(built, imageEnv);
  const expanded: Instruction[] = built.stages[index]!.stage.instructions.map((instruction) => variables.expand(instruction));
  return { built, variables, expanded: expanded.filter((i) => i.kind !== 'ARG' && i.kind !== 'ENV') };
}

describe('global ARGs', () => {
  test('are visible to FROM, and overridden by --build-arg', () => {
    const text = 'ARG BASE=alpine\nARG TAG=3.19\nFROM ${BASE}:${TAG}\n';
    expect(plan(text).stages[0]!.base).toEqual({ kind: 'image', ref: 'alpine:3.19' });
    expect(plan(text, { buildArgs: args({ TAG: 'edge' }) }).stages[0]!.base).toEqual({ kind: 'image', ref: 'alpine:edge' });
  });

  test('are not visible in a stage unless redeclared, then with the global value', () => {
    const text = 'ARG V=global\nFROM scratch\nLABEL before=$V\nARG V\nLABEL after=$V\n';
    const { expanded } = walk(text);
    expect(expanded.map((i) => i.kind === 'LABEL' && i.pairs[0])).toEqual([
      { key: 'before', value: '' },
      { key: 'after', value: 'global' },
    ]);
  });

  test('predefined platform args: FROM sees them, stages only when declared', () => {
    const options = { platform: { os: 'linux', architecture: 'arm64', variant: 'v8' }, buildPlatform: { os: 'linux', architecture: 'amd64' } };
    const text = 'FROM --platform=$BUILDPLATFORM img:$TARGETARCH\nLABEL a=$TARGETOS\nARG TARGETPLATFORM TARGETVARIANT BUILDARCH\nLABEL b=$TARGETPLATFORM c=$TARGETVARIANT d=$BUILDARCH\n';
    const { built, expanded } = walk(text, options);
    expect(built.stages[0]).toMatchObject({ base: { ref: 'img:arm64' }, platform: { os: 'linux', architecture: 'amd64' } });
    expect(expanded.flatMap((i) => (i.kind === 'LABEL' ? i.pairs : []))).toEqual([
      { key: 'a', value: '' },
      { key: 'b', value: 'linux/arm64/v8' },
      { key: 'c', value: 'v8' },
      { key: 'd', value: 'amd64' },
    ]);
  });
});

describe('ARG and ENV in a stage', () => {
  test('--build-arg overrides a default; a default can use earlier values', () => {
    const text = 'FROM scratch\nARG A=1\nARG B=${A}0\nWORKDIR /$A/$B\n';
    expect(walk(text).expanded[0]).toMatchObject({ path: '/1/10' });
    expect(walk(text, { buildArgs: args({ A: '7' }) }).expanded[0]).toMatchObject({ path: '/7/70' });
    expect(walk(text, { buildArgs: args({ B: 'b' }) }).expanded[0]).toMatchObject({ path: '/1/b' });
  });

  test('ENV is expanded when defined: a later change does not reach it', () => {
    const { variables } = walk('FROM scratch\nENV A=1\nENV B=$A\nENV A=2\n');
    expect(variables.imageEnv()).toEqual(['A=2', 'B=1']);
  });

  test('one ENV line expands every value with the values before it', () => {
    const { variables } = walk('FROM scratch\nENV abc=hello\nENV abc=bye def=$abc\n');
    expect(variables.imageEnv()).toEqual(['abc=bye', 'def=hello']);
  });

  test('ENV wins over ARG, in expansion and in the RUN environment', () => {
    const { variables, expanded } = walk('FROM scratch\nARG V=arg\nENV V=env\nUSER $V\n', { buildArgs: args({ V: 'given' }) });
    expect(expanded[0]).toMatchObject({ user: 'env' });
    expect(variables.runEnv()).toEqual(['V=env']);
  });

  test('the base image Env is visible and extended', () => {
    const { variables, expanded } = walk('FROM base\nENV PATH=/opt/bin:$PATH\nWORKDIR $HOME\n', {}, ['PATH=/usr/bin', 'HOME=/root']);
    expect(variables.imageEnv()).toEqual(['PATH=/opt/bin:/usr/bin', 'HOME=/root']);
    expect(expanded[0]).toMatchObject({ path: '/root' });
  });

  test('ARGs go to RUN but not into the image; proxy args go to RUN undeclared', () => {
    const { variables } = walk('FROM scratch\nARG VERSION=1.2\nARG EMPTY\n', { buildArgs: args({ HTTP_PROXY: 'http://proxy:3128', OTHER: 'x' }) });
    expect(variables.imageEnv()).toEqual([]);
    expect(variables.runEnv()).toEqual(['HTTP_PROXY=http://proxy:3128', 'VERSION=1.2']);
    expect([...variables.declaredArgs()]).toEqual([['VERSION', '1.2']]);
  });

  test('ARG is not inherited by a child stage; ENV is, through the image', () => {
    const text = 'FROM scratch AS parent\nARG A=1\nENV E=2\nFROM parent\nLABEL a=$A e=$E\n';
    const parent = walk(text, {}, [], 0);
    const child = walk(text, {}, parent.variables.imageEnv(), 1);
    expect(child.built.stages[1]!.base).toEqual({ kind: 'stage', index: 0 });
    expect(child.expanded[0]).toMatchObject({ pairs: [{ key: 'a', value: '' }, { key: 'e', value: '2' }] });
  });

  test('COPY, ADD, EXPOSE, VOLUME, STOPSIGNAL, LABEL expand; RUN and CMD do not', () => {
    const text = 'FROM scratch\nARG D=/d P=80 S=TERM\nCOPY --chown=$P $D/a ${D}/b/\nADD ${D}.tar /x\nEXPOSE $P\nVOLUME $D\nSTOPSIGNAL SIG$S\nRUN echo $D\nCMD echo $D\n';
    const { expanded } = walk(text);
    expect(expanded).toMatchObject([
      { kind: 'COPY', chown: '80', sources: ['/d/a'], dest: '/d/b/' },
      { kind: 'ADD', sources: ['/d.tar'] },
      { kind: 'EXPOSE', ports: ['80'] },
      { kind: 'VOLUME', paths: ['/d'] },
      { kind: 'STOPSIGNAL', signal: 'SIGTERM' },
      { kind: 'RUN', command: { script: 'echo $D' } },
      { kind: 'CMD', command: { script: 'echo $D' } },
    ]);
  });

  test('heredoc files expand unless their delimiter is quoted', () => {
    const text = 'FROM scratch\nARG N=world\nCOPY <<EOF /a\nhello "$N"\nEOF\nCOPY <<"EOF" /b\nhello $N\nEOF\n';
    expect(walk(text).expanded.map((i) => i.kind === 'COPY' && i.inlineSources[0]!.content)).toEqual(['hello "world"\n', 'hello $N\n']);
  });

  test('an expansion error names the line', () => {
    expect(() => walk('FROM scratch\nARG V\nWORKDIR ${V:?must be set}\n')).toThrow(/V: must be set/);
    try {
      walk('FROM scratch\nARG V\nWORKDIR ${V:?must be set}\n');
    } catch (error) {
      expect((error as DockerfileError).summary).toMatch(/^Dockerfile:3:1: /);
    }
  });

  test('build args that no ARG declares are reported, proxy args are not', () => {
    const built = plan('ARG A\nFROM scratch\nARG B\n', { buildArgs: args({ A: '1', B: '2', C: '3', NO_PROXY: 'x' }) });
    expect(unusedBuildArgs(built)).toEqual(['C']);
  });
});

describe('stages', () => {
  const multi = [
    'FROM busybox AS Base', 'FROM base AS build', 'RUN make', 'FROM busybox AS unused', 'RUN sleep 100',
    'FROM scratch AS tools', 'FROM scratch', 'COPY --from=BUILD /out /out', 'COPY --from=3 / /tools',
    'RUN --mount=type=bind,from=base,target=/b true', 'COPY --from=alpine:3 /etc/alpine-release /',
  ].join('\n');

  test('the target needs only the stages it references, dependencies first', () => {
    const built = plan(multi);
    expect(built.target).toBe(4);
    expect(built.stages.map((s) => s.base)).toEqual([
      { kind: 'image', ref: 'busybox' }, { kind: 'stage', index: 0 }, { kind: 'image', ref: 'busybox' }, { kind: 'scratch' }, { kind: 'scratch' },
    ]);
    expect(built.stages[4]!.dependencies.sort()).toEqual([0, 1, 3]);
    expect(built.order).toEqual([0, 1, 3, 4]);
  });

  test('--target by name, case-insensitively', () => {
    expect(plan(multi, { target: 'BUILD' }).order).toEqual([0, 1]);
    expect(() => plan(multi, { target: 'nope' })).toThrow('target stage "nope" could not be found (stages: base, build, unused, tools)');
  });

  test('undefined stage references are errors, images are not', () => {
    const error = (text: string) => {
      try {
        plan(text);
      } catch (e) {
        return (e as DockerfileError).summary;
      }
      return 'no error';
    };
    expect(error('FROM a AS builder\nFROM b\nCOPY --from=buider /x /x\n')).toBe(
      'Dockerfile:3:1: undefined stage "buider" in --from (did you mean builder?); to copy from an image of that name, add its tag: buider:latest',
    );
    expect(error('FROM a\nCOPY --from=1 /x /x\n')).toBe('Dockerfile:2:1: --from=1: there is no stage 1 before this one (stages are numbered from 0)');
    expect(error('FROM a AS x\nCOPY --from=x /x /x\n')).toBe('Dockerfile:2:1: --from=x refers to the stage it is in');
    expect(error('FROM a AS builder\nFROM b\nCOPY --from=nginx:1 /x /x\n')).toBe('no error');
  });

  test('a circular dependency through forward references is an error', () => {
    expect(() => plan('FROM a AS one\nCOPY --from=two /x /x\nFROM b AS two\nCOPY --from=one /y /y\n')).toThrow(
      'circular dependency between stages: two -> one -> two',
    );
  });
});
