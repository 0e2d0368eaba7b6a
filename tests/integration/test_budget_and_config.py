"""The partition budget refuses what the nodes cannot hold; topic config changes reach running
partitions (and survive their restart); the CLI commands for both."""

import os
import time

import pytest
import ray
from click.testing import CliRunner

import rayka
from rayka.cli import cli
from rayka.errors import ConfigError, PartitionBudgetError

from rayka.testing import consume_all, wait_for


def _partition_actors(cluster) -> set[str]:
    prefix = f"rayka:{cluster.cluster_name}:p:"
    return {a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith(prefix)}


def _topic_dirs(cluster) -> set[str]:
    from pathlib import Path

    root = Path(cluster.data_dir) / "topics"
    return {p.name for p in root.iterdir()} if root.exists() else set()


def test_create_topic_over_the_budget_is_refused_with_nothing_created(cluster, admin):
    budget = admin.set_partition_budget({"max.partitions": 3})
    assert budget["limit"] == 3 and budget["partitions"] == 0
    admin.create_topic("fits", partitions=2)
    before = (_partition_actors(cluster), _topic_dirs(cluster))
    assert len(before[0]) == 2
    with pytest.raises(PartitionBudgetError) as err:
        admin.create_topic("too-big", partitions=2)
    e = err.value
    assert (e.existing, e.requested, e.limit) == (2, 2, 3)
    assert "create_topic('too-big', partitions=2)" in str(e) and "max.partitions=3" in str(e)
    assert "too-big" not in admin.list_topics()
    assert (_partition_actors(cluster), _topic_dirs(cluster)) == before
    admin.create_topic("one-more", partitions=1)  # exactly at the limit is allowed


def test_add_partitions_over_the_budget_is_refused_and_the_override_lifts_it(cluster, admin):
    admin.set_partition_budget({"max.partitions": 3})
    admin.create_topic("grow", partitions=2)
    actors = _partition_actors(cluster)
    with pytest.raises(PartitionBudgetError, match=r"add_partitions\('grow', total=5\)"):
        admin.add_partitions("grow", total=5)
    assert admin.describe_topic("grow").num_partitions == 2 and _partition_actors(cluster) == actors
    assert admin.set_partition_budget({"max.partitions": -1})["limit"] is None
    assert admin.add_partitions("grow", total=5).num_partitions == 5
    assert len(_partition_actors(cluster)) == 5


def test_the_default_limit_comes_from_the_alive_nodes_memory(cluster, admin):
    memory = [n["Resources"].get("memory", 0) for n in ray.nodes() if n["Alive"]]
    budget = admin.partition_budget()
    assert budget["node_memory_bytes"] == memory and budget["max.partitions"] is None
    assert budget["limit"] == sum(int(m * budget["partition.memory.fraction"] // budget["partition.memory.bytes"])
                                  for m in memory) > 0
    # Count each partition at a petabyte: no node holds one, so even one is refused.
    admin.set_partition_budget({"partition.memory.bytes": 2**50})
    with pytest.raises(PartitionBudgetError, match="GiB of Ray memory") as err:
        admin.create_topic("huge", partitions=1)
    assert err.value.limit == 0 and "huge" not in admin.list_topics()
    with pytest.raises(ConfigError, match="known keys"):
        admin.set_partition_budget({"max.partitions.per.broker": 1})
    # None resets a key; the budget is kept in the data dir for the next coordinator.
    assert admin.set_partition_budget({"partition.memory.bytes": None})["partition.memory.bytes"] == 128 * 2**20
    admin.create_topic("huge", partitions=1)


def test_alter_topic_config_applies_retention_to_a_running_partition(cluster, admin):
    admin.create_topic("old", partitions=1)
    hour_ago = time.time_ns() // 1_000_000 - 3_600_000
    with rayka.Producer() as p:
        for i in range(100):
            p.send("old", value=b"v%d" % i, timestamp_ms=hour_ago)
    assert admin.describe_topic("old").partitions[0].log_start_offset == 0  # 7 days keep them
    new = admin.alter_topic_config("old", {"retention.ms": 600_000})
    assert new["retention.ms"] == 600_000 and admin.describe_topic_config("old")["retention.ms"] == 600_000
    wait_for(lambda: admin.describe_topic("old").partitions[0].log_start_offset == 100, 15,
             what="retention of the hour-old records after retention.ms=600000")
    assert admin.describe_topic("old").config["retention.ms"] == 600_000


def test_alter_topic_config_rolls_by_the_new_segment_bytes_and_survives_a_restart(cluster, admin):
    admin.create_topic("seg", partitions=1)
    value = b"x" * 1000
    with rayka.Producer() as p:
        for _ in range(8):
            p.send("seg", value=value)
            p.flush()
    assert admin.describe_topic("seg").partitions[0].segments == 1
    admin.alter_topic_config("seg", {"segment.bytes": 4096})
    with rayka.Producer() as p:
        for _ in range(8):
            p.send("seg", value=value)
            p.flush()
    assert admin.describe_topic("seg").partitions[0].segments >= 3
    # Ray restarts a partition actor with its first arguments; the change must outlive that.
    handles = [p.handle for p in cluster.topic("seg", refresh=True)[1]]

    def pid():
        return ray.get(handles[0].__ray_call__.remote(lambda self: os.getpid()), timeout=5)

    old_pid = pid()
    ray.kill(handles[0], no_restart=False)

    def restarted():  # ray.kill returns before the process is gone: wait for the new one
        try:
            return pid() != old_pid and ray.get(handles[0].config.remote(), timeout=5)
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            return None

    version, config = wait_for(restarted, 60, 0.2, "the partition actor to restart")
    assert version == 1 and config["segment.bytes"] == 4096


def test_alter_topic_config_refuses_bad_keys_with_nothing_changed(cluster, admin):
    admin.create_topic("cfg", partitions=2, config={"retention.ms": 60_000})
    before = admin.describe_topic_config("cfg")
    with pytest.raises(ConfigError, match="known keys: .*retention.ms"):
        admin.alter_topic_config("cfg", {"retention.msec": 1, "segment.bytes": 4096})
    with pytest.raises(ConfigError, match="segment.bytes must be >= 1024"):
        admin.alter_topic_config("cfg", {"segment.bytes": 1})
    assert admin.describe_topic_config("cfg") == before
    handles = [p.handle for p in cluster.topic("cfg", refresh=True)[1]]
    assert [v for v, _ in ray.get([h.config.remote() for h in handles])] == [0, 0]


def test_cli_alter_config_and_config(cluster, admin):
    admin.create_topic("clitopic", partitions=1, config={"retention.ms": 60_000})
    runner = CliRunner()
    base = ["--cluster", cluster.cluster_name]
    out = runner.invoke(cli, base + ["topics", "alter-config", "clitopic", "-c", "segment.bytes=8192",
                                     "-c", "retention.ms="])
    assert out.exit_code == 0, out.output
    assert "segment.bytes=8192" in out.output and f"retention.ms={7 * 24 * 3600 * 1000}" in out.output
    out = runner.invoke(cli, base + ["topics", "config", "clitopic"])
    assert out.exit_code == 0, out.output
    rows = dict(line.split() for line in out.output.splitlines()[1:])
    assert rows["segment.bytes"] == "8192" and rows["retention.ms"] == str(7 * 24 * 3600 * 1000)
    assert set(rows) == set(admin.describe_topic_config("clitopic"))
    out = runner.invoke(cli, base + ["topics", "alter-config", "clitopic", "-c", "bogus.key=1"])
    assert out.exit_code != 0 and "known keys" in str(out.exception)


def test_an_idle_partition_actor_releases_its_memory_and_serves_on(cluster, admin):
    from rayka.actors.partition import IDLE_RELEASE_S

    admin.create_topic("idle", partitions=1)
    with rayka.Producer() as p:
        for i in range(50):
            p.send("idle", value=b"r%d" % i)
    consumer = rayka.Consumer("idle", auto_offset_reset="earliest")
    try:
        assert [r.value for r in consume_all(consumer, 50)] == [b"r%d" % i for i in range(50)]
        handles = [p.handle for p in cluster.topic("idle")[1]]

        def released():  # the read mapped the active segment; idle, the actor drops the map
            return ray.get(handles[0].__ray_call__.remote(
                lambda self: self._released and not self._opener.log._segments[-1].file.mapped))

        # Its last use moved IDLE_RELEASE_S into the past, as if it had been idle that long: its
        # tick (every 0.1 s) sees the idle time past the bound and releases.
        ray.get(handles[0].__ray_call__.remote(
            lambda self: setattr(self, "_last_used", self._last_used - IDLE_RELEASE_S)))
        wait_for(released, 20, 0.05, "the idle partition to release its memory")
        with rayka.Producer() as p:
            p.send("idle", value=b"later").result(timeout=30)
        assert [r.value for r in consume_all(consumer, 1)] == [b"later"]
    finally:
        consumer.close()
