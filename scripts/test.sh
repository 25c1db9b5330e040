#!/usr/bin/env bash
# The test command: set up what is missing (scripts/setup.sh, idempotent), build, then run the whole suite
# against the installed package. Extra arguments go to pytest (e.g. `scripts/test.sh -k safety`).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$here/scripts/setup.sh"
# shellcheck source=scripts/env.sh
source "$here/scripts/env.sh"
cd "$here"
export COSMOS_ROS_REQUIRE_INSTALL=1
# Hypothesis: the "ci" profile (test/conftest.py) runs thousands of examples per safety property.
export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-ci}"
echo "[test] pytest against the install space ($(python -c 'import cosmos_ros, os; print(os.path.dirname(cosmos_ros.__file__))'))"
# `pytest` (not `python -m pytest`): the source tree must not shadow the install space on sys.path.
exec pytest -p no:cacheprovider "$@"
