"""The replication keys of the topic config: defaults, ranges, the Kafka-style names."""

import pytest

from rayka.config import TopicConfig
from rayka.errors import ConfigError


def test_defaults_and_round_trip():
    cfg = TopicConfig()
    assert (cfg.min_insync_replicas, cfg.replica_lag_time_max_ms, cfg.unclean_leader_election_enable,
            cfg.replica_placement, cfg.replica_lost_timeout_ms) == (1, 30_000, False, "spread", 60_000)
    changed = TopicConfig.from_dict({"min.insync.replicas": 2, "replica.placement": "colocate",
                                     "unclean.leader.election.enable": True, "replica.lost.timeout.ms": 0,
                                     "replica.lag.time.max.ms": 0})
    assert TopicConfig.from_dict(changed.to_dict()) == changed


@pytest.mark.parametrize("text, value", [("true", True), ("FALSE", False), (True, True)])
def test_unclean_election_takes_a_bool_or_its_cli_text(text, value):
    assert TopicConfig.from_dict({"unclean.leader.election.enable": text}).unclean_leader_election_enable is value


@pytest.mark.parametrize("key, value, range_text", [
    ("min.insync.replicas", 0, ">= 1"),
    ("min.insync.replicas", "2", "integer"),
    ("replica.lag.time.max.ms", -1, ">= 0"),
    ("replica.lost.timeout.ms", -5, ">= 0"),
    ("replica.lost.timeout.ms", True, "integer"),
    ("unclean.leader.election.enable", 1, "true or false"),
    ("unclean.leader.election.enable", "yes", "true or false"),
    ("replica.placement", "anywhere", "spread"),
])
def test_bad_values_name_the_key_and_the_allowed_range(key, value, range_text):
    with pytest.raises(ConfigError, match=key) as info:
        TopicConfig.from_dict({key: value})
    assert range_text in str(info.value)
