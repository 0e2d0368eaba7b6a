"""Replication and failover under real faults, on a 3-node ray.cluster_utils.Cluster.

The scenarios run in one child process on one cluster (``_replication_scenario.py``: a
multi-node Cluster cannot share a process with the session's ``ray.init``; the conftest's
``scenario_report`` runs the ones this session's tests mark, test_multinode.py's too); each
test here checks what one of them reported. The checker (rayka.checker) counts an outcome
that a RayActorError or a timeout left unknown as indeterminate, never as lost.
"""

import pytest


@pytest.fixture
def report(scenario_report):
    return scenario_report


def _no_error(report, name):
    assert f"{name}_error" not in report, report[f"{name}_error"] + report["_log"]


@pytest.mark.slow
@pytest.mark.scenario("failover")
def test_acks_all_loses_nothing_when_a_leaders_node_is_removed(report):
    _no_error(report, "failover")
    result = report["failover"]
    assert result["acknowledged"] > 2000, result
    assert result["lost"] == 0 and result["duplicated"] == 0 and result["reordered"] == 0, result
    assert result["wrong"] == 0, result
    assert report["failover_leader_changed"]
    # The README's 5 s bound is measured by benchmarks/replication.py on a quiet machine; here, with
    # six scenarios' clusters sharing two cores, a failover that works takes 3-10 s; a broken one
    # never accepts writes again (the producer's 60 s delivery timeout).
    assert report["failover_first_ack_s"] is not None and report["failover_first_ack_s"] < 20, report


@pytest.mark.slow
@pytest.mark.scenario("acks1_window")
def test_acks_1_shows_the_loss_window_and_acks_all_closes_it(report):
    _no_error(report, "acks1_window")
    lossy, safe = report["acks_1"], report["acks_all"]
    assert lossy["acknowledged"] == 21 and lossy["lost"] == 20, lossy  # acknowledged by the leader alone
    assert safe["lost"] == 0 and safe["duplicated"] == 0 and safe["reordered"] == 0, safe
    assert safe["acknowledged"] >= 1, safe


@pytest.mark.slow
@pytest.mark.scenario("fencing")
def test_a_deposed_leader_is_fenced_and_truncates_its_divergent_tail(report):
    _no_error(report, "fencing")
    # Refused at once (it already knows it was deposed), or taken but never visible, and gone after.
    assert report["fence_append"] in ("NotLeaderError", "FencedLeaderEpochError", "accepted"), report
    if isinstance(report["fence_old_view_hw"], int):
        assert report["fence_old_view_hw"] <= 10, report  # its consumers' view did not advance
    values = report["fence_values"]
    assert "fenced" not in values
    assert values == [f"before-{i}" for i in range(10)] + [f"after-{i}" for i in range(10)]
    assert report["fence_old_role"] == "follower"


@pytest.mark.slow
@pytest.mark.scenario("healing")
def test_a_lost_replica_is_replaced_and_the_isr_is_full_again(report):
    _no_error(report, "healing")
    assert len(report["heal_replicas"]) == 3 and max(report["heal_replicas"]) >= 3, report
    assert report["heal_identical"] and report["heal_records"] == 300, report


@pytest.mark.slow
@pytest.mark.scenario("reassign")
def test_a_reassigned_partition_moves_its_replicas_without_losing_a_record(report):
    _no_error(report, "reassign")
    assert report["reassign_nodes_ok"] and report["reassign_removed"], report
    assert report["reassign_identical"] and report["reassign_records"] == 200, report


@pytest.mark.slow
@pytest.mark.scenario("follower_reads")
def test_a_consumer_with_client_rack_local_reads_from_the_follower_on_its_node_up_to_the_hw(report):
    _no_error(report, "follower_reads")
    assert report["nearby_acked"] and report["nearby_follower_is_off_the_leaders_node"], report
    assert report["nearby_on_node"], report  # the task ran on the follower's node
    # The follower held 450 records, the HW was 400 (the other follower paused): 400 read, in order.
    assert report["nearby_follower_log_end"] == 450 and report["nearby_hw_while_paused"] == 400, report
    assert report["nearby_in_order"] and report["nearby_read"] == 400, report
    # The follower on that node answered, and every record came from it (none from the leader).
    assert report["nearby_served_by"] == report["nearby_follower"], report
    assert report["nearby_from_followers"] == report["nearby_fetched"] == 400, report
    assert report["nearby_fallbacks"] == 0, report


@pytest.mark.slow
@pytest.mark.scenario("chaos")
def test_chaos_loses_nothing_and_group_consumers_process_every_acknowledged_record(report):
    _no_error(report, "chaos")
    result = report["chaos"]
    assert len(report["chaos_actions"]) >= 6, report["chaos_actions"]
    assert result["acknowledged"] > 1000, result
    assert result["lost"] == 0 and result["duplicated"] == 0 and result["reordered"] == 0, result
    assert result["wrong"] == 0, result
    assert report["chaos_unprocessed"] == 0 and not report["chaos_errors"], report
