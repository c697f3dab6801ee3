// The one way a layer's entries are gathered (LayerBuilder) and paths are followed inside a root (followSymlinks).
import { expect, test } from 'vitest';
import { followSymlinks, LayerBuilder, type LayerEntry } from '../../layers/index.ts';
import { cpuTimed } from '../support/load.ts';

const dir = (path: string): LayerEntry => ({ path, type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime: 0 });
const file = (path: string, source = `/host/${path}`): LayerEntry => ({ path, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: 1, source });
const brief = (entries: LayerEntry[]): string[] => entries.map((e) => `${e.path} ${e.type}${e.linkname ? ` -> ${e.linkname}` : ''}`);

test('put merges a directory into a directory; anything else replaces the path and all below it', () => {
  const layer = new LayerBuilder();
  for (const entry of [dir('a'), file('a/x'), dir('a'), file('a/y'), dir('b'), file('b/z')]) layer.put(entry);
  layer.put(file('b'));
  expect(brief(layer.build())).toEqual(['a directory', 'a/x file', 'a/y file', 'b file']);
});

test('mkdirAll makes what is missing, counts directories below, and stops at a non-directory in the way', () => {
  const layer = new LayerBuilder((path) => path === 'usr');
  expect(layer.mkdirAll('/usr/./local/bin', dir)).toBeUndefined();
  expect(brief(layer.build())).toEqual(['usr/local directory', 'usr/local/bin directory']);
  layer.set(file('usr/local/bin/app'));
  expect(layer.mkdirAll('usr/local/bin/app/x', dir)).toBe('usr/local/bin/app');
  expect(layer.get('usr/local/bin/app/x')).toBeUndefined();
});

test('files sharing content become one file, at the first path, and hardlinks to it', () => {
  const layer = new LayerBuilder();
  layer.set(file('z', '/host/same'), 'inode');
  layer.set(file('a', '/host/same'), 'inode');
  layer.set(file('m'));
  expect(brief(layer.build())).toEqual(['a file', 'm file', 'z hardlink -> a']);
});

test('followSymlinks stays inside the root, counts hops, and takes time linear in the path', () => {
  const links: Record<string, string> = { lib: 'usr/lib', up: '../../..', abs: '/etc', loop: 'loop' };
  const linkAt = (rel: string): string | undefined => links[rel];
  expect(followSymlinks('/lib/x', linkAt)).toBe('usr/lib/x');
  expect(followSymlinks('up/x', linkAt)).toBe('x');
  expect(followSymlinks('a/../abs/./passwd', linkAt)).toBe('etc/passwd');
  expect(() => followSymlinks('loop/x', linkAt)).toThrow('too many levels of symbolic links in /loop/x');
  let hops = 0;
  expect(() => followSymlinks('loop', () => (hops++ < 100 ? 'loop' : undefined), 255)).not.toThrow();
  // In CPU time, which a loaded machine does not stretch: a quadratic walk took minutes.
  const { result, cpuMs } = cpuTimed(() => followSymlinks('a/'.repeat(200_000), () => undefined));
  expect(result.length).toBe(399_999);
  expect(cpuMs).toBeLessThan(2000);
});
