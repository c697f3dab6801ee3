// Parallel compression: gzip gives one valid gzip member whatever the block boundaries, judged by
// gunzip; zstd gives frames that the zstd tool reads back as the input.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { gzipParallel, zstdParallel } from '../../layers/compression.ts';

async function gzip(chunks: Buffer[], level: number): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const chunk of gzipParallel((async function* () { yield* chunks; })(), level)) out.push(chunk);
  return Buffer.concat(out);
}

describe('gzipParallel', () => {
  const text = Buffer.from('node_modules/some-package/index.js: module.exports = 42;\n'.repeat(60_000));
  const random = randomBytes(3 * 1024 * 1024 + 17);
  const inputs: [string, Buffer[]][] = [
    ['empty', []],
    ['one small chunk', [Buffer.from('hello\n')]],
    ['text over three blocks, odd chunk sizes', [text.subarray(0, 1), text.subarray(1, 1_500_000), text.subarray(1_500_000)]],
    ['incompressible data over four blocks', [random]],
  ];

  test.each(inputs)('%s: gunzip gives the input back, and the output is the same every time', async (_name, chunks) => {
    const compressed = await gzip(chunks, 1);
    expect(execFileSync('gunzip', ['-c'], { input: compressed, maxBuffer: 1 << 26 }).equals(Buffer.concat(chunks))).toBe(true);
    expect((await gzip(chunks, 1)).equals(compressed)).toBe(true);
    expect(execFileSync('gzip', ['-t'], { input: compressed }).length).toBe(0);
  });

  test('the level matters, and the dictionary keeps the ratio across blocks', async () => {
    const [fast, small] = [await gzip([text], 1), await gzip([text], 9)];
    expect(small.length).toBeLessThan(fast.length);
    expect(fast.length).toBeLessThan(text.length / 50);
  });
});

test('incompressible blocks are stored: about the input size, still one valid member', async () => {
  const random = randomBytes(4 * 1024 * 1024);
  const compressed = await gzip([random], 6);
  expect(compressed.length).toBeGreaterThan(random.length);
  expect(compressed.length).toBeLessThan(random.length * 1.001);
  expect(execFileSync('gunzip', ['-c'], { input: compressed, maxBuffer: 1 << 26 }).equals(random)).toBe(true);
});

describe('zstdParallel', () => {
  const text = Buffer.from('node_modules/some-package/index.js: module.exports = 42;\n'.repeat(60_000));
  const zstd = async (chunks: Buffer[], level: number): Promise<Buffer> => {
    const out: Buffer[] = [];
    for await (const chunk of zstdParallel((async function* () { yield* chunks; })(), level)) out.push(chunk);
    return Buffer.concat(out);
  };

  test.each([
    ['empty', []],
    ['one small chunk', [Buffer.from('hello\n')]],
    ['text over three blocks, odd chunk sizes', [text.subarray(0, 1), text.subarray(1, 1_500_000), text.subarray(1_500_000)]],
    ['incompressible data over four blocks', [randomBytes(3 * 1024 * 1024 + 17)]],
  ] as [string, Buffer[]][])('%s: zstd -d gives the input back, and the output is the same every time', async (_name, chunks) => {
    const compressed = await zstd(chunks, 3);
    expect(execFileSync('zstd', ['-d', '-c'], { input: compressed, maxBuffer: 1 << 26 }).equals(Buffer.concat(chunks))).toBe(true);
    expect((await zstd(chunks, 3)).equals(compressed)).toBe(true);
    execFileSync('zstd', ['-t', '-q'], { input: compressed });
  });

  test('the level matters', async () => {
    const [fast, small] = [await zstd([text], 1), await zstd([text], 19)];
    expect(small.length).toBeLessThan(fast.length);
    expect(fast.length).toBeLessThan(text.length / 50);
  });
});
