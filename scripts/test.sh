#!/usr/bin/env bash
# Runs the test suite. hoist is a rootless builder, so the tests run as an unprivileged user with a
# subuid/subgid range: as root, this script creates that user (hoist-test) and drops to it.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/scripts/node-env.sh"
cd "$repo"

if [ "$(id -u)" = 0 ]; then
  user=hoist-test
  id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$user"
  grep -q "^$user:" /etc/subuid || echo "$user:200000:65536" >> /etc/subuid
  grep -q "^$user:" /etc/subgid || echo "$user:200000:65536" >> /etc/subgid
  exec su "$user" -s /bin/bash -c "cd '$repo' && PATH='$PATH' bash scripts/test.sh $*"
fi
npx tsc -p tsconfig.json
exec npx vitest run --configLoader runner "$@"
