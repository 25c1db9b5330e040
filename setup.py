"""Minimal: everything is declared in setup.cfg (read by pip and by the colcon build, see CMakeLists.txt)."""

from setuptools import setup

setup()
