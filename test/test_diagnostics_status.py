"""The node side of the diagnostics: a core DiagnosticsReport as a diagnostic_msgs/DiagnosticStatus."""

from __future__ import annotations

import pytest

from cosmos_ros.diagnostics import DiagnosticsReport, Level

pytestmark = pytest.mark.ros


def test_report_to_status_maps_levels_to_message_bytes() -> None:
    from diagnostic_msgs.msg import DiagnosticStatus

    from cosmos_ros.nodes.conversions import report_to_status

    for level, byte in (
        (Level.OK, DiagnosticStatus.OK),
        (Level.WARN, DiagnosticStatus.WARN),
        (Level.ERROR, DiagnosticStatus.ERROR),
    ):
        st = report_to_status(DiagnosticsReport(level, "m", {"a": "1", "b": "x"}), "n: planner", "hw")
        assert st.level == byte and (st.name, st.message, st.hardware_id) == ("n: planner", "m", "hw")
        assert [(kv.key, kv.value) for kv in st.values] == [("a", "1"), ("b", "x")]
