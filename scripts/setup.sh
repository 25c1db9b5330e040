#!/usr/bin/env bash
# Set up everything cosmos_ros needs and build the package with colcon. Idempotent; prints each step.
#
# Two cases:
#  * A ROS 2 installation is sourced (ROS_DISTRO set, rclpy importable): use it. A virtual environment with
#    --system-site-packages gets the pip-only dependencies (torch, diffusers, ...), colcon comes from ROS.
#  * No ROS: a virtual environment gets ROS 2 Kilted from the PyPI ros-* wheels, colcon, and the pip-only
#    dependencies. The wheels' exported CMake targets name include dirs under /opt/python/cp3XX-cp3XX/
#    (their build machine); we make those paths exist as symlinks into this environment, and refuse (with the
#    way out) when they already serve another environment (scripts/opt_python_links.sh).
#
# Environment knobs:
#   COSMOS_ROS_VENV     where the virtual environment lives (default ~/.cache/cosmos_ros/venv-<pyver>).
#                       It must be outside the source tree: CMake refuses exported include dirs inside it.
#   COSMOS_ROS_PYTHON   interpreter to use (default: python3.11, else python3.12, else python3).
#   COSMOS_ROS_SKIP_BUILD=1  set up the environment only.
#   COSMOS_ROS_BUILD_TESTING=1  build the CMake test target too (`colcon test --packages-select cosmos_ros`).
#   COSMOS_ROS_REPOINT_OPT_PYTHON=1  take the machine-wide /opt/python links over from another environment.
#
# Afterwards: `source scripts/env.sh` puts the environment and the install space in your shell.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# --- 1. Tools we cannot install ourselves ----------------------------------------------------------
for tool in cmake make cc c++ git; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found. On Debian/Ubuntu: sudo apt-get install -y build-essential cmake git"
done

# --- 2. Python -------------------------------------------------------------------------------------
ros_sourced=0
if [ -n "${ROS_DISTRO:-}" ] && python3 -c 'import rclpy' >/dev/null 2>&1; then
  ros_sourced=1
  py="${COSMOS_ROS_PYTHON:-python3}"
  say "ROS 2 '$ROS_DISTRO' is sourced: using it (no ROS wheels installed)."
else
  py="${COSMOS_ROS_PYTHON:-}"
  if [ -z "$py" ]; then
    for cand in python3.11 python3.12 python3; do
      if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] not in ((3, 11), (3, 12)))' 2>/dev/null; then
        py="$cand"; break
      fi
    done
  fi
  [ -n "$py" ] || die "need Python 3.11 or 3.12 (the ROS 2 Kilted wheels are cp311/cp312 only); set COSMOS_ROS_PYTHON"
  "$py" -c 'import sys; sys.exit(sys.version_info[:2] not in ((3, 11), (3, 12)))' \
    || die "$py is $("$py" -V 2>&1); the ROS 2 Kilted wheels need Python 3.11 or 3.12"
fi
pyver="$("$py" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
"$py" -c 'import venv, ensurepip' >/dev/null 2>&1 || die "$py lacks venv/ensurepip. On Debian/Ubuntu: sudo apt-get install -y python${pyver}-venv"
"$py" -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
  || die "Python headers for $py not found (Python.h). On Debian/Ubuntu: sudo apt-get install -y python${pyver}-dev"

venv="${COSMOS_ROS_VENV:-$HOME/.cache/cosmos_ros/venv-$pyver}"
case "$(realpath -m "$venv")/" in "$here"/*) die "COSMOS_ROS_VENV=$venv is inside the source tree; CMake rejects that. Pick a path outside $here";; esac

# --- 3. Virtual environment ------------------------------------------------------------------------
if [ ! -x "$venv/bin/python" ]; then
  say "creating virtual environment $venv ($py, Python $pyver)"
  mkdir -p "$(dirname "$venv")"
  if [ "$ros_sourced" = 1 ]; then "$py" -m venv --system-site-packages "$venv"; else "$py" -m venv "$venv"; fi
else
  say "virtual environment exists: $venv"
fi
vpy="$venv/bin/python"
pip_install() { "$vpy" -m pip install --disable-pip-version-check -q "$@" 2>&1 | grep -v "^WARNING: Location" || true; }

# Skip pip when the requirement files have not changed since the last successful install.
stamp="$venv/.cosmos_ros_requirements"
# requirements.txt includes the role files (-r requirements-node.txt ...): a change in any of them counts.
want="$(cat requirements.txt requirements-node.txt requirements-server.txt requirements-sim.txt requirements-test.txt
        [ "$ros_sourced" = 1 ] || cat requirements-ros-wheels.txt)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  say "pip requirements unchanged since last install: skipping pip"
else
  if [ "$ros_sourced" = 0 ]; then
    say "installing ROS 2 Kilted wheels + colcon (requirements-ros-wheels.txt)"
    pip_install -r requirements-ros-wheels.txt
  fi
  say "installing pip-only dependencies (requirements.txt, requirements-test.txt); torch is the CPU build here"
  pip_install -r requirements.txt -r requirements-test.txt
  "$vpy" -c 'import rclpy, diffusers, torch, rosbags' || die "dependency install incomplete (see pip output above)"
  printf '%s' "$want" > "$stamp"
fi

# pytest: the pip-only set-up pins one (requirements-ros-wheels.txt); with ROS it must be the distro's
# python3-pytest, the one launch_testing / launch_pytest (pytest plugins loaded by EVERY pytest run) work with.
"$vpy" -c 'import pytest' 2>/dev/null || die "no pytest importable. With ROS: sudo apt-get install python3-pytest"
say "pytest $("$vpy" -c 'import pytest; print(pytest.__version__, "from", pytest.__file__)')"
"$vpy" "$here/cosmos_ros/testing/pytest_compat.py" \
  || die "this pytest cannot load the installed ROS pytest plugins (reasons above); every pytest run would fail"

# --- 4. /opt/python paths named by the wheels' CMake exports ---------------------------------------
if [ "$ros_sourced" = 0 ]; then
  tag="cp${pyver/./}-cp${pyver/./}"
  inc="$("$vpy" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
  site="$("$vpy" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  # Machine-wide links: refuses (with the way out) when they belong to another environment that still exists.
  bash "$here/scripts/opt_python_links.sh" "/opt/python/$tag" "$pyver" "$inc" "$site" || exit $?
fi

# --- 5. Build --------------------------------------------------------------------------------------
if [ "${COSMOS_ROS_SKIP_BUILD:-0}" = 1 ]; then say "COSMOS_ROS_SKIP_BUILD=1: not building"; exit 0; fi
# shellcheck source=scripts/env.sh
COSMOS_ROS_VENV="$venv" COSMOS_ROS_NO_INSTALL_SPACE=1 source "$here/scripts/env.sh"
# COSMOS_ROS_BUILD_TESTING=1: also the CMake test target, for `colcon test --packages-select cosmos_ros`.
build_testing=OFF; [ "${COSMOS_ROS_BUILD_TESTING:-0}" = 1 ] && build_testing=ON
say "colcon build (ament_cmake: messages generated, Python package and launch/config installed)"
colcon --log-base log build --base-paths "$here" --build-base build --install-base install \
  --cmake-args -DPython3_EXECUTABLE="$vpy" -DBUILD_TESTING="$build_testing" -Wno-dev 2>&1 | tail -n 20
[ "${PIPESTATUS[0]}" = 0 ] || die "colcon build failed (full log: $here/log/latest_build)"
test -f install/cosmos_ros/share/cosmos_ros/package.xml || die "build finished but install/cosmos_ros/share/cosmos_ros/package.xml is missing"
say "done. Use it with: source scripts/env.sh"
