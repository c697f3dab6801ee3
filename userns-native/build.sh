#!/bin/sh
# Builds the sandbox helper with the system C compiler (npm's install step runs this).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$here/build"
${CC:-cc} -O2 -Wall -Wextra -Werror -o "$here/build/hoist-sandbox.tmp" "$here/hoist-sandbox.c"
mv "$here/build/hoist-sandbox.tmp" "$here/build/hoist-sandbox"
