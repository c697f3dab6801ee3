// Every option key and value is honoured or refused with exit 2 and its name: a CI job must never
// go green having pushed nothing. Through the CLI, judged by skopeo against a real registry.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { hoist, hoistOk, writeContext } from '../support/hoist.ts';
import { startRegistry, type Registry } from '../support/registry.ts';

let dir: string;
let context: string;
let registry: Registry;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hoist-options-'));
  context = writeContext(dir, 'context', { Dockerfile: 'FROM scratch\nCOPY a.txt /\n', 'a.txt': 'a\n' });
  registry = await startRegistry();
});
afterAll(async () => {
  await registry.stop();
  rmSync(dir, { recursive: true, force: true });
});

const build = (...args: string[]) => hoist(['build', '--root', join(dir, 'store'), ...args, context]);
/** The digest the registry serves for `ref`, or undefined when it has none. */
function pushed(ref: string): string | undefined {
  const result = spawnSync('skopeo', ['inspect', '--tls-verify=false', `docker://${ref}`], { encoding: 'utf8' });
  return result.status === 0 ? JSON.parse(result.stdout).Digest : undefined;
}

describe('pushing as buildx does', () => {
  test('-o type=image,name=R,push=true and -o type=registry,name=R push; --push=false and push=false do not', () => {
    // Without provenance, every push of the same image is the same manifest.
    const built = hoistOk(['build', '--root', join(dir, 'store'), '--provenance=false', '-o', `type=image,name=${registry.host}/opt/image:1,push=true`, context]);
    const digest = /built (sha256:[0-9a-f]{64})/.exec(built.stdout)![1];
    expect(pushed(`${registry.host}/opt/image:1`)).toBe(digest);
    hoistOk(['build', '--root', join(dir, 'store'), '--provenance=false', '-o', `type=registry,name=${registry.host}/opt/registry:1`, context]);
    expect(pushed(`${registry.host}/opt/registry:1`)).toBe(digest);
    // Several names in one quoted field, pushed with --push=true.
    hoistOk(['build', '--root', join(dir, 'store'), '--provenance=false', '--push=true', '-o', `type=image,"name=${registry.host}/opt/a:1,${registry.host}/opt/b:1"`, context]);
    expect([pushed(`${registry.host}/opt/a:1`), pushed(`${registry.host}/opt/b:1`)]).toEqual([digest, digest]);

    hoistOk(['build', '--root', join(dir, 'store'), '-t', `${registry.host}/opt/not:1`, '--push=false', context]);
    hoistOk(['build', '--root', join(dir, 'store'), '-o', `type=image,name=${registry.host}/opt/not:2,push=false`, context]);
    expect([pushed(`${registry.host}/opt/not:1`), pushed(`${registry.host}/opt/not:2`)]).toEqual([undefined, undefined]);
    expect(hoistOk(['images', '--root', join(dir, 'store')]).stdout).toContain('opt/not');
  });

  test('-t names what an explicit output writes and is not also tagged in the store, as in buildx', () => {
    hoistOk(['build', '--root', join(dir, 'store'), '-t', 'only-in-tarball:1', '-o', `type=oci,dest=${join(dir, 'named.tar')}`, context]);
    expect(hoistOk(['images', '--root', join(dir, 'store')]).stdout).not.toContain('only-in-tarball');
    expect(spawnSync('tar', ['-xOf', join(dir, 'named.tar'), 'index.json'], { encoding: 'utf8' }).stdout).toContain('only-in-tarball:1');
  });

  test('boolean flags take =true and =false; anything else is refused', () => {
    const again = build('--no-cache=true');
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain('cache disabled');
    expect(build('--no-cache=false').stderr).toContain('CACHED');
    const bad = build('--push=maybe');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--push=maybe: expected true or false');
  });

  test('--cache-to ignore-error=true turns a failed cache export into a warning', () => {
    const run = build('--cache-to', 'type=registry,ref=127.0.0.1:1/nowhere/cache,ignore-error=true');
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toContain('warning: the cache was not exported (ignore-error=true)');
    expect(build('--cache-to', 'type=registry,ref=127.0.0.1:1/nowhere/cache').code).toBe(1);
  });
});

describe('keys and values hoist does not honour are refused by name, before anything is built', () => {
  const secretFile = (): string => {
    const file = join(dir, 'secret.txt');
    writeFileSync(file, 's');
    return file;
  };
  test.each([
    ['-o', 'type=oci,dest=out.tar,compression=estargz', 'compression=estargz is not supported'],
    ['-o', 'type=image,oci-mediatypes=false', 'oci-mediatypes=false is not supported'],
    ['-o', 'type=local,dest=DIR,annotation.org.opencontainers.image.title=x', 'type=local holds files, not an image: it takes no annotations'],
    ['-o', 'type=local,dest=out,platform-split=true', 'hoist does not support "platform-split" here'],
    ['-o', 'type=registry,name=x/y:1,unpack=true', 'hoist does not support "unpack" here'],
    ['-o', 'type=image,push=sometimes', 'push=sometimes: expected true or false'],
    ['-o', 'type=oci,dest=a.tar,dest=b.tar', '"dest" is given twice'],
    ['-o', 'type=image,"name=x', 'a quote is not closed'],
    ['--cache-to', 'type=registry,ref=x/y:cache,compression=zstd', 'compression=zstd is not supported'],
    ['--cache-to', 'type=local,dest=c,bogus=1', 'hoist does not support "bogus" here'],
    ['--cache-from', 'type=local,src=c,mode=max', 'hoist does not support "mode" here'],
    ['--secret', 'id=a,src=SECRET,bogus=1', 'hoist does not support "bogus" here'],
    ['--secret', 'id=a,type=ssh', 'type must be file or env'],
  ])('%s %s', (flag, spec, message) => {
    const run = build(flag, spec.replace('SECRET', secretFile()));
    expect(run.code, run.stderr).toBe(2);
    expect(run.stderr).toContain(message);
    expect(run.stderr).not.toContain('COPY');
  });
});
