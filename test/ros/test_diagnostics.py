"""The node's statistics and /diagnostics status: input ages from stamps on another clock are named as such, not
reported as ages (the DDS side, a replay with /clock, is in test_replay.py)."""
from __future__ import annotations

import math

from diagnostic_msgs.msg import DiagnosticStatus

from sgnet_ros.diagnostics import OFF_CLOCK, NodeStatistics, diagnostic_status

DAY_MS = 86_400_000.0


def status_of(ages_ms: list[float]) -> DiagnosticStatus:
    statistics = NodeStatistics()
    for age in ages_ms:
        statistics.count_received(False)
        statistics.count_processed(latency_ms=20.0, inference_ms=15.0, input_age_ms=age)
    return diagnostic_status(statistics.report(), "/ns/sgnet: node", "cpu", True, ["/ns/image"])


def values(status: DiagnosticStatus) -> dict[str, str]:
    return {item.key: item.value for item in status.values}


def test_ages_on_the_node_clock_are_reported():
    status = status_of([30.0, 10.0, 20.0, -5.0])  # -5: a camera clock a little ahead, still this clock
    assert status.level == DiagnosticStatus.OK and status.message.startswith("running at")
    assert OFF_CLOCK not in status.message
    assert (values(status)["input_age_ms_median"], values(status)["input_age_ms_max"]) == ("15.000", "30.000")
    assert values(status)["input_stamps_off_clock"] == "0"


def test_stamps_from_another_clock_say_so_instead_of_an_age():
    # A bag recorded a day ago replayed to a node on wall time, and one whose stamps run ahead of it.
    status = status_of([DAY_MS, DAY_MS + 100.0, -21_725.0])
    assert values(status)["input_age_ms_median"] == values(status)["input_age_ms_max"] == OFF_CLOCK
    assert values(status)["input_stamps_off_clock"] == "3"
    assert status.level == DiagnosticStatus.OK and status.message.endswith(f"; input {OFF_CLOCK}")
    assert "use_sim_time" in OFF_CLOCK


def test_a_few_off_clock_frames_leave_the_others_ages():
    # The replay's warm-up frame goes out before the first /clock: one off-clock frame among real ages.
    status = status_of([-DAY_MS, 0.0, 2.0, 4.0])
    assert (values(status)["input_age_ms_median"], values(status)["input_age_ms_max"]) == ("2.000", "4.000")
    assert values(status)["input_stamps_off_clock"] == "1" and OFF_CLOCK not in status.message


def test_frames_without_stamps_are_neither_ages_nor_off_clock():
    status = status_of([math.nan, math.nan])
    assert values(status)["input_age_ms_median"] == "nan" and values(status)["input_stamps_off_clock"] == "0"
