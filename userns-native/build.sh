#!/bin/sh
# Builds the sandbox helper, which RUN steps need, with the system C compiler. npm's install step
# runs this and goes on if it fails (see package.json): hoist then runs, and RUN says what to do.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cc=${CC:-cc}
if ! command -v "$cc" >/dev/null 2>&1; then
  echo "hoist: no C compiler ($cc), so RUN steps cannot run until you build the sandbox helper: install gcc (Debian/Ubuntu: apt-get install gcc libc6-dev), then run: sh $here/build.sh" >&2
  exit 1
fi
# A clone treats warnings as errors; an installed package must not fail on a newer compiler's.
werror=
[ -e "$here/../.git" ] && werror=-Werror
mkdir -p "$here/build"
$cc -O2 -Wall -Wextra $werror -o "$here/build/hoist-sandbox.tmp" "$here/hoist-sandbox.c"
mv "$here/build/hoist-sandbox.tmp" "$here/build/hoist-sandbox"
