// hoist's own parser cases: the typed model, heredocs, directives and errors (BuildKit keeps
// these only inside its Go tests).
import { describe, expect, test } from 'vitest';
import { DockerfileError, parseDockerfile, parseInstructions, type Instruction } from '../../parser/index.ts';

const only = (text: string): Instruction => {
  const dockerfile = parseInstructions(`FROM scratch\n${text}`);
  return dockerfile.stages[0]!.instructions[0]!;
};

const errorOf = (text: string): DockerfileError => {
  try {
    parseInstructions(text);
  } catch (error) {
    if (error instanceof DockerfileError) return error;
    throw error;
  }
  throw new Error('expected a DockerfileError');
};

describe('typed instructions', () => {
  test('FROM with --platform and AS, stage named case-insensitively', () => {
    const dockerfile = parseInstructions('FROM --platform=$BUILDPLATFORM golang:1.22 AS Build\n');
    expect(dockerfile.stages[0]).toMatchObject({
      index: 0,
      name: 'build',
      from: { kind: 'FROM', image: 'golang:1.22', platform: '$BUILDPLATFORM', range: { start: { line: 1, column: 1 } } },
    });
  });

  test('RUN shell and exec forms with flags and mounts', () => {
    expect(only('RUN --network=none --mount=type=cache,target=/root/.cache,sharing=locked make')).toMatchObject({
      kind: 'RUN',
      command: { form: 'shell', script: 'make' },
      network: 'none',
      mounts: [{ type: 'cache', target: '/root/.cache', sharing: 'locked' }],
    });
    expect(only('RUN ["/bin/echo", "a b", "c\\"d"]')).toMatchObject({ command: { form: 'exec', argv: ['/bin/echo', 'a b', 'c"d'] } });
    expect(only('RUN --mount=type=secret,id=npmrc,required npm ci')).toMatchObject({
      mounts: [{ type: 'secret', id: 'npmrc', required: true }],
    });
    expect(only('RUN --mount=type=bind,from=build,source=/out,target=/in,ro ls')).toMatchObject({
      mounts: [{ type: 'bind', from: 'build', source: '/out', target: '/in', readonly: true }],
    });
  });

  test('COPY and ADD with all their flags', () => {
    expect(only('COPY --from=build --chown=app:app --chmod=0755 --link --parents --exclude=*.md --exclude=test a b /dst/')).toMatchObject({
      kind: 'COPY', sources: ['a', 'b'], dest: '/dst/', from: 'build', chown: 'app:app', chmod: '0755',
      link: true, parents: true, exclude: ['*.md', 'test'],
    });
    expect(only('ADD --checksum=sha256:abc --keep-git-dir=true --unpack=false https://x/y.tar.gz /src')).toMatchObject({
      kind: 'ADD', sources: ['https://x/y.tar.gz'], dest: '/src', checksum: 'sha256:abc', keepGitDir: true, unpack: false, link: false,
    });
    expect(only('COPY ["a b", "/c d/"]')).toMatchObject({ sources: ['a b'], dest: '/c d/' });
  });

  test('CMD, ENTRYPOINT, SHELL', () => {
    expect(only('CMD echo hi')).toMatchObject({ kind: 'CMD', command: { form: 'shell', script: 'echo hi' } });
    expect(only('ENTRYPOINT ["/app"]')).toMatchObject({ kind: 'ENTRYPOINT', command: { form: 'exec', argv: ['/app'] } });
    expect(only('SHELL ["/bin/bash", "-c"]')).toMatchObject({ kind: 'SHELL', argv: ['/bin/bash', '-c'] });
  });

  test('ENV and LABEL, legacy and modern forms', () => {
    expect(only('ENV PATH /usr/bin:/bin')).toMatchObject({ kind: 'ENV', pairs: [{ key: 'PATH', value: '/usr/bin:/bin' }] });
    expect(only('ENV A=1 B="two words"')).toMatchObject({ pairs: [{ key: 'A', value: '1' }, { key: 'B', value: '"two words"' }] });
    expect(only('LABEL org.opencontainers.image.title="hoist" version=1')).toMatchObject({
      kind: 'LABEL', pairs: [{ key: 'org.opencontainers.image.title', value: '"hoist"' }, { key: 'version', value: '1' }],
    });
  });

  test('the remaining instructions', () => {
    expect(only('EXPOSE 80/tcp 53/udp')).toMatchObject({ kind: 'EXPOSE', ports: ['80/tcp', '53/udp'] });
    expect(only('VOLUME ["/data", "/logs"]')).toMatchObject({ kind: 'VOLUME', paths: ['/data', '/logs'] });
    expect(only('VOLUME /a /b')).toMatchObject({ paths: ['/a', '/b'] });
    expect(only('USER app:staff')).toMatchObject({ kind: 'USER', user: 'app:staff' });
    expect(only('WORKDIR /srv/my app')).toMatchObject({ kind: 'WORKDIR', path: '/srv/my app' });
    expect(only('ARG A B=2 C="x y"')).toMatchObject({ kind: 'ARG', args: [{ name: 'A' }, { name: 'B', value: '2' }, { name: 'C', value: '"x y"' }] });
    expect(only('STOPSIGNAL SIGTERM')).toMatchObject({ kind: 'STOPSIGNAL', signal: 'SIGTERM' });
    expect(only('MAINTAINER someone <a@b>')).toMatchObject({ kind: 'MAINTAINER', name: 'someone <a@b>' });
    expect(only('ONBUILD RUN make')).toMatchObject({ kind: 'ONBUILD', expression: 'RUN make', trigger: { kind: 'RUN', command: { script: 'make' } } });
  });

  test('HEALTHCHECK in the image config form, durations in nanoseconds', () => {
    expect(only('HEALTHCHECK --interval=30s --timeout=1m30s --start-period=500ms --retries=3 CMD curl -f http://localhost/')).toMatchObject({
      kind: 'HEALTHCHECK', test: ['CMD-SHELL', 'curl -f http://localhost/'], interval: 30e9, timeout: 90e9, startPeriod: 500e6, retries: 3,
    });
    expect(only('HEALTHCHECK CMD ["/check", "-q"]')).toMatchObject({ test: ['CMD', '/check', '-q'] });
    expect(only('HEALTHCHECK NONE')).toMatchObject({ test: ['NONE'] });
  });

  test('every instruction carries its source range', () => {
    const dockerfile = parseInstructions('FROM scratch\n\nRUN a \\\n  b\nCMD x\n');
    expect(dockerfile.stages[0]!.instructions.map((i) => i.range)).toEqual([
      { start: { line: 3, column: 1 }, end: { line: 4, column: 4 } },
      { start: { line: 5, column: 1 }, end: { line: 5, column: 6 } },
    ]);
  });
});

describe('heredocs', () => {
  test('RUN <<EOF: the body is kept apart from the command', () => {
    const run = only('RUN <<EOF\necho one\necho two\nEOF\n');
    expect(run).toMatchObject({ command: { form: 'shell', script: '<<EOF' }, heredocs: [{ name: 'EOF', content: 'echo one\necho two\n', expand: true, chomp: false, fd: 0 }] });
  });

  test('several per line, file descriptor prefix, quoted delimiters, <<- tab trimming', () => {
    const run = only('RUN 3<<"A" cat /dev/fd/3 - <<-\'B\'\n$x\nA\n\tindented\n\tB\n');
    expect(run).toMatchObject({
      heredocs: [
        { name: 'A', content: '$x\n', expand: false, fd: 3, chomp: false },
        { name: 'B', content: 'indented\n', expand: false, fd: 0, chomp: true },
      ],
    });
  });

  test('COPY <<EOF writes an inline file', () => {
    expect(only('COPY <<EOF /etc/motd\nhello $USER\nEOF\n')).toMatchObject({
      sources: [], dest: '/etc/motd', inlineSources: [{ name: 'EOF', content: 'hello $USER\n', expand: true }],
    });
  });

  test('a heredoc body is not parsed as instructions, and the next line after it is', () => {
    const dockerfile = parseInstructions('FROM scratch\nRUN <<EOF\nFROMM nothing\nEOF\nCMD ["x"]\n');
    expect(dockerfile.stages[0]!.instructions.map((i) => i.kind)).toEqual(['RUN', 'CMD']);
  });

  test('JSON-form RUN has no heredocs', () => {
    expect(only('RUN ["cat", "<<EOF"]')).toMatchObject({ heredocs: [] });
  });
});

describe('directives', () => {
  test('escape, syntax and check at the top; keys case-insensitive', () => {
    const parsed = parseDockerfile('# Syntax=docker/dockerfile:1\n#  ESCAPE = `\n# check=skip=all\nFROM scratch\nRUN a `\n  b\n');
    expect(parsed.directives).toEqual({ escape: '`', syntax: 'docker/dockerfile:1', check: 'skip=all' });
    expect(parsed.nodes[1]!.args).toEqual(['a   b']);
  });

  test('an unknown key or any other line ends the directives', () => {
    expect(parseDockerfile('# foo=bar\n# escape=`\nFROM scratch\n').directives.escape).toBe('\\');
    expect(parseDockerfile('\n# escape=`\nFROM scratch\n').directives.escape).toBe('\\');
  });

  test('a repeated directive and a bad escape are errors', () => {
    expect(errorOf('# escape=`\n# escape=\\\nFROM scratch\n').summary).toBe('Dockerfile:2:1: only one escape parser directive can be used');
    expect(errorOf('# escape=x\nFROM scratch\n').summary).toMatch(/^Dockerfile:1:1: invalid escape token 'x'/);
  });
});

describe('errors a user sees', () => {
  test('unknown instruction, with its line, column, the line itself and a suggestion', () => {
    const lines = ['FROM scratch', ...Array.from({ length: 10 }, (_, i) => `ENV V${i}=${i}`), '    RUNN echo hi'];
    const error = errorOf(lines.join('\n') + '\n');
    expect(error.summary).toBe('Dockerfile:12:5: unknown instruction: RUNN (did you mean RUN?)');
    expect(error.format()).toBe('Dockerfile:12:5: unknown instruction: RUNN (did you mean RUN?)\n 12 |     RUNN echo hi\n    |     ^');
  });

  test('unknown flag, at the flag', () => {
    expect(errorOf('FROM scratch\nCOPY --link --chmown=1 a /b\n').summary).toBe(
      'Dockerfile:2:13: unknown flag: --chmown (COPY takes --chown, --chmod, --link, --parents, --exclude, --from)',
    );
    expect(errorOf('FROM scratch\nWORKDIR --x=1 /a\n').summary).toBe('Dockerfile:2:9: unknown flag: --x (WORKDIR takes no flags)');
    expect(errorOf('FROM scratch\nCOPY --from a /b\n').summary).toBe('Dockerfile:2:6: missing a value on flag: --from');
    expect(errorOf('FROM scratch\nCOPY --link=maybe a /b\n').summary).toBe('Dockerfile:2:6: expecting boolean value for flag --link, not: maybe');
  });

  test('empty and comment-only Dockerfiles', () => {
    expect(errorOf('').summary).toBe('Dockerfile:1:1: the Dockerfile has no instructions');
    expect(errorOf('# nothing\n\n# here\n').summary).toBe('Dockerfile:3:1: the Dockerfile has no instructions');
  });

  test('unterminated heredoc names the instruction that opened it', () => {
    expect(errorOf('FROM scratch\nRUN <<EOF\necho hi\n').summary).toBe('Dockerfile:2:1: unterminated heredoc: no line "EOF" before the end of the file');
  });

  test('bad JSON and argument counts', () => {
    expect(errorOf('FROM scratch\nCMD ["a", 1]\n').summary).toBe('Dockerfile:2:5: a JSON array form must hold only strings');
    expect(errorOf('FROM scratch\nCOPY onlyone\n').summary).toMatch(/^Dockerfile:2:6: COPY requires at least two arguments/);
    expect(errorOf('FROM a b\n').summary).toMatch(/^Dockerfile:1:6: FROM requires either one argument, or three/);
    expect(errorOf('FROM a AS 1x\n').summary).toMatch(/invalid name for build stage: "1x"/);
    expect(errorOf('FROM a\nSHELL /bin/sh -c\n').summary).toBe('Dockerfile:2:7: SHELL requires the arguments to be in JSON form');
    expect(errorOf('FROM a\nONBUILD FROM b\n').summary).toBe('Dockerfile:2:9: FROM is not allowed as an ONBUILD trigger');
    expect(errorOf('FROM a\nHEALTHCHECK --interval=5 CMD x\n').summary).toMatch(/invalid duration for --interval: "5"/);
    expect(errorOf('FROM a\nRUN --network=bridge x\n').summary).toMatch(/unsupported network mode: bridge/);
    expect(errorOf('FROM a\nRUN --mount=type=cache x\n').summary).toMatch(/--mount needs a target/);
  });

  test('only ARG may come before the first FROM; stage names are unique', () => {
    expect(errorOf('ENV A=1\nFROM scratch\n').summary).toBe('Dockerfile:1:1: ENV comes before the first FROM: only ARG may');
    expect(errorOf('FROM a AS x\nFROM b AS X\n').summary).toBe('Dockerfile:2:1: duplicate stage name "x" (first used on line 1)');
  });
});
