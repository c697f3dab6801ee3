// `node test/support/make-busybox.ts OCI_DIR`: busyboxLayout (oci-layouts.ts) as a command, for
// synchronous callers (makeBusyboxLayout) and for pushing the image to a registry by hand:
//   skopeo copy --dest-tls-verify=false oci:OCI_DIR:latest docker://localhost:5000/busybox:latest
import { busyboxLayout } from './oci-layouts.ts';

const dest = process.argv[2];
if (!dest) {
  console.error('usage: node test/support/make-busybox.ts OCI_DIR');
  process.exit(2);
}
await busyboxLayout(dest);
