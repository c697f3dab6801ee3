// Applies an OCI layout's image to a new directory and prints the seconds it took: run by apply.ts
// inside hoist's user namespace, where the files get the image's owners as in a build.
import { Store, applyLayers, importOciLayout } from '../../layers/index.ts';
import { writeXattrs } from '../../userns-native/index.ts';

const [storeRoot, layout, tag, dest] = process.argv.slice(2) as [string, string, string, string];
const store = await Store.open(storeRoot);
const [imported] = await importOciLayout(store, layout, tag);
const started = performance.now();
await applyLayers(store, imported!.image.layers, dest, { asRoot: true, setXattrs: writeXattrs });
console.log(((performance.now() - started) / 1000).toFixed(3));
