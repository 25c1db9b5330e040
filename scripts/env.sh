# Source me: puts the cosmos_ros virtual environment and its install space into the current shell.
#   source scripts/env.sh
# Works for both set-ups of scripts/setup.sh (sourced ROS 2, or the PyPI ROS 2 wheels).
_cr_here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# colcon's and the venv's setup scripts read unset variables: allow that here, restore the caller's `set -u`.
case $- in *u*) _cr_nounset=1; set +u;; *) _cr_nounset=0;; esac
if [ -z "${COSMOS_ROS_VENV:-}" ]; then
  for _cr_v in 3.11 3.12; do
    if [ -x "$HOME/.cache/cosmos_ros/venv-$_cr_v/bin/python" ]; then COSMOS_ROS_VENV="$HOME/.cache/cosmos_ros/venv-$_cr_v"; break; fi
  done
fi
if [ -z "${COSMOS_ROS_VENV:-}" ] || [ ! -x "$COSMOS_ROS_VENV/bin/python" ]; then
  echo "[env] no cosmos_ros virtual environment found; run scripts/setup.sh first" >&2
  [ "$_cr_nounset" = 1 ] && set -u
  return 1 2>/dev/null || exit 1
fi
export COSMOS_ROS_VENV
# shellcheck disable=SC1091
VIRTUAL_ENV_DISABLE_PROMPT=1 source "$COSMOS_ROS_VENV/bin/activate"
if [ -z "${ROS_DISTRO:-}" ]; then
  # PyPI wheels: the venv is the ament prefix (share/ament_index, share/<pkg>/cmake, lib/*.so).
  export AMENT_PREFIX_PATH="$COSMOS_ROS_VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
  export CMAKE_PREFIX_PATH="$COSMOS_ROS_VENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
fi
if [ "${COSMOS_ROS_NO_INSTALL_SPACE:-0}" != 1 ] && [ -f "$_cr_here/install/setup.bash" ]; then
  # shellcheck disable=SC1091
  source "$_cr_here/install/setup.bash"
fi
[ "$_cr_nounset" = 1 ] && set -u
unset _cr_here _cr_v _cr_nounset
