#!/usr/bin/env bash
# The test command: set up what is missing (scripts/setup.sh, idempotent), build, then run the whole suite
# against the installed package. Extra arguments go to pytest (e.g. `scripts/test.sh -k safety`).
#
#   scripts/test.sh --fast [pytest args]   the pure-core tier only (`-m fast`, test/conftest.py FAST_MODULES),
#                                          from the source tree: no build, no ROS graph, no model; Hypothesis
#                                          profile "fast". The full suite stays the CI command.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ "${1:-}" = "--fast" ]; then
  shift
  # Only the environment is needed (set up without a build when it is missing).
  # shellcheck source=scripts/env.sh
  source "$here/scripts/env.sh" 2>/dev/null || { COSMOS_ROS_SKIP_BUILD=1 bash "$here/scripts/setup.sh" && source "$here/scripts/env.sh"; }
  cd "$here"
  export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-fast}"
  # ROS and the model stack are hidden (test/helpers/import_blocker): the tier stays pure core, and a test in
  # it that wants them skips with its reason instead of loading torch for a minute.
  export COSMOS_ROS_BLOCK_IMPORTS="rclpy,launch,launch_ros,launch_pytest,torch,diffusers,transformers,accelerate,pybullet,onnxruntime,tensorrt"
  export PYTHONPATH="$here/test/helpers/import_blocker${PYTHONPATH:+:$PYTHONPATH}"
  echo "[test] fast tier: pure core from the source tree ($here/cosmos_ros), Hypothesis profile $HYPOTHESIS_PROFILE"
  # `python -m pytest`: the source tree first on sys.path, on purpose (the core needs no generated messages).
  exec env COSMOS_ROS_REQUIRE_INSTALL=0 python -m pytest -p no:cacheprovider -m fast "$@"
fi
# COSMOS_ROS_SKIP_SETUP=1: run against the install space as it is (no set-up, no rebuild).
[ "${COSMOS_ROS_SKIP_SETUP:-0}" = 1 ] || bash "$here/scripts/setup.sh"
# shellcheck source=scripts/env.sh
source "$here/scripts/env.sh"
cd "$here"
export COSMOS_ROS_REQUIRE_INSTALL=1
# Hypothesis: the "ci" profile (test/conftest.py) runs thousands of examples per safety property.
export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}"
# Resolved from outside the source tree: from here, `python -c` would put the source tree first on sys.path
# and name it. A cosmos_ros that is not under install/ is refused rather than tested.
pkg="$(cd / && python -c 'import cosmos_ros, os; print(os.path.dirname(cosmos_ros.__file__))')"
case "$pkg" in
  "$here"/install/*) echo "[test] pytest against the install space ($pkg)";;
  *) echo "[test] ERROR: cosmos_ros resolves to $pkg, not to $here/install; run scripts/setup.sh" >&2; exit 1;;
esac
# `pytest` (not `python -m pytest`): the source tree must not shadow the install space on sys.path.
exec pytest -p no:cacheprovider "$@"
