#!/usr/bin/env bash
# Make the machine-wide paths that the PyPI ros-* wheels' exported CMake targets name exist:
#   ROOT/include/pythonX.Y                -> INCLUDE  (the interpreter's Python.h directory)
#   ROOT/lib/pythonX.Y/site-packages      -> SITE     (this environment's site-packages: numpy's headers)
# ROOT is /opt/python/cp3XX-cp3XX (the wheels' build machine). Called by scripts/setup.sh; tests call it with a
# scratch ROOT.
#
# These links are machine-wide, so one environment's set-up must not silently take them from another: when
# a link already points at a different directory that still exists, this refuses (exit 3) and explains,
# unless COSMOS_ROS_REPOINT_OPT_PYTHON=1 says to take them over. A link to a directory that is gone is
# re-pointed, saying so.
#
# Usage: opt_python_links.sh ROOT PYVER INCLUDE SITE
set -euo pipefail
root="$1"; pyver="$2"; inc="$3"; site="$4"

say() { printf '[setup] %s\n' "$*"; }

sudo_=""
if ! mkdir -p "$root/include" "$root/lib/python$pyver" 2>/dev/null; then
  command -v sudo >/dev/null || { printf '[setup] ERROR: cannot create %s (not root, no sudo)\n' "$root" >&2; exit 1; }
  sudo_="sudo"
  $sudo_ mkdir -p "$root/include" "$root/lib/python$pyver"
fi

link() {  # link TARGET NAME
  local target="$1" name="$2" current
  current="$(readlink "$name" 2>/dev/null || true)"
  if [ "$current" = "$target" ]; then return 0; fi
  if [ -e "$name" ] && [ ! -L "$name" ]; then say "$name exists and is not a symlink: leaving it alone"; return 0; fi
  if [ -n "$current" ] && [ -e "$current" ] && [ "${COSMOS_ROS_REPOINT_OPT_PYTHON:-0}" != 1 ]; then
    cat >&2 <<EOF
[setup] ERROR: $name already points at
[setup]          $current
[setup]        (another environment on this machine); this set-up needs it at
[setup]          $target
[setup]   The ros-* wheels' CMake exports name this machine-wide path, so only one environment per Python
[setup]   version can build against them at a time. Re-pointing it would silently break the other
[setup]   environment's builds, so set-up stops here. Either
[setup]   * use the other environment: COSMOS_ROS_VENV=${current%/lib/python*/site-packages} scripts/setup.sh, or
[setup]   * take the links over knowingly (the other environment stops building):
[setup]     COSMOS_ROS_REPOINT_OPT_PYTHON=1 scripts/setup.sh
EOF
    exit 3
  fi
  if [ -n "$current" ]; then say "$name pointed at $current; re-pointing"; fi
  say "symlink $name -> $target (the ros-* wheels' CMake exports name this path)"
  $sudo_ ln -sfn "$target" "$name"
}

link "$inc" "$root/include/python$pyver"
link "$site" "$root/lib/python$pyver/site-packages"
