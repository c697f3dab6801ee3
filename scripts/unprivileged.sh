# Sourced by test.sh and bench.sh: hoist is a rootless builder, so its tests and benchmarks run as
# an unprivileged user with a subuid/subgid range. As root, `as_unprivileged SCRIPT ARGS...` makes
# that user (hoist-test) if needed and re-runs SCRIPT as it; otherwise it returns.
as_unprivileged() {
  [ "$(id -u)" = 0 ] || return 0
  local user=hoist-test script=$1
  shift
  id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$user"
  grep -q "^$user:" /etc/subuid || echo "$user:200000:65536" >> /etc/subuid
  grep -q "^$user:" /etc/subgid || echo "$user:200000:65536" >> /etc/subgid
  # The user's own HOME, as a login would give: hoist keeps Node's compile cache under it, and one
  # it cannot write (root's) would make every command compile hoist again.
  local home
  home=$(getent passwd "$user" | cut -d: -f6)
  exec su "$user" -s /bin/bash -c "cd '$repo' && HOME='$home' PATH='$PATH' bash '$script' $*"
}
