// A real distribution, rootless: Debian made by mmdebstrap, `apt-get install python3` in a RUN
// (it needs Debian's package mirror, as CI has), and a file capability that survives the trip
// through a layer and back into a base image.
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { importOciLayout, normalizeReference, Store } from '../../layers/index.ts';
import { hoistOk, removeTree, writeContext } from '../support/hoist.ts';
import { debianLayout } from '../support/oci-layouts.ts';

let dir: string;
let root: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hoist-debian-'));
  root = join(dir, 'store');
  const store = await Store.open(root);
  const [debian] = await importOciLayout(store, await debianLayout(join(dir, 'oci')), 'bookworm');
  await store.tag(normalizeReference('debian:bookworm'), debian!.image.descriptor);
}, 300_000);
afterAll(() => removeTree(dir));

const context = (name: string, dockerfile: string): string => writeContext(dir, name, { Dockerfile: dockerfile });

const CAPABILITY = '0100000200040000000000000000000000000000'; // cap_net_bind_service, v2

test('apt-get install python3 works rootless, the result runs, and a file capability is kept both ways', () => {
  const built = hoistOk(['build', '--root', root, '-t', 'py', context('apt', [
    'FROM debian:bookworm',
    'RUN apt-get update && apt-get install -y --no-install-recommends python3 && rm -rf /var/lib/apt/lists/*',
    `RUN python3 -c "import os; open('/capfile', 'w').close(); os.setxattr('/capfile', 'security.capability', bytes.fromhex('${CAPABILITY}'))"`,
  ].join('\n'))]);
  expect(built.stderr).toContain('Setting up python3 (');

  const child = hoistOk(['build', '--root', root, context('child', [
    'FROM py',
    `RUN python3 -c "import os, sys; print('python', sys.version.split()[0], 'capability', os.getxattr('/capfile', 'security.capability').hex())"`,
  ].join('\n'))]);
  expect(child.stderr).toMatch(new RegExp(`python 3\\.\\d+\\.\\d+ capability ${CAPABILITY}`));

  const inspected = JSON.parse(hoistOk(['inspect', '--root', root, 'py']).stdout);
  const capabilityLayer = join(root, 'blobs', 'sha256', inspected.Manifest.layers[2].digest.slice(7));
  expect(execFileSync('tar', ['--xattrs', '--xattrs-include=*', '-tvvzf', capabilityLayer], { encoding: 'utf8' })).toMatch(/capfile\n\s+x: 20 security\.capability/);
}, 600_000);
