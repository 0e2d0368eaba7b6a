"""Kafka producers' idempotence in the partition's producer state (partitions/producer_state.py):
per-record sequence numbers, the last 5 batches as duplicates, int32 wrap-around, epoch fencing,
the rebuild after a restart; rayka's own producers keep their per-batch rule. No Ray."""

import pytest

from rayka.config import TopicConfig
from rayka.errors import (
    DuplicateSequenceError,
    InvalidProducerEpochError,
    InvalidRecordError,
    OutOfOrderSequenceError,
)
from rayka.partitions.log import PartitionLog
from rayka.partitions.producer_state import (
    KAFKA_SEQUENCE_MODULUS,
    KEEP_BATCHES,
    BatchRecord,
    ProducerStateTable,
    kafka_producer_id,
    parse_kafka_producer_id,
)

from storage_helpers import batch, crash, read_all

K = kafka_producer_id


def write(table, producer_id, sequence, count, base, ms=0):
    """check + update as PartitionLog.append does; the record written (or the duplicate's)."""
    earlier = table.check(producer_id, sequence, count)
    if earlier is not None:
        return earlier
    record = BatchRecord(sequence, base, count, ms)
    table.update(producer_id, record)
    return record


# -- the id ------------------------------------------------------------------------------------

def test_kafka_producer_id_round_trips():
    assert K(0, 0) == "kafka:0:0"
    assert parse_kafka_producer_id(K(2**63 - 1, 32767)) == (2**63 - 1, 32767)
    assert parse_kafka_producer_id(K(42, 3)) == (42, 3)


@pytest.mark.parametrize("pid,epoch", [(-1, 0), (2**63, 0), (1, -1), (1, 2**15), (True, 0), ("1", 0), (1, 1.0)])
def test_kafka_producer_id_refuses_out_of_range(pid, epoch):
    with pytest.raises(InvalidRecordError, match="Kafka producer"):
        K(pid, epoch)


@pytest.mark.parametrize("other", [None, "p1", "0f3a9c", "kafka:1", "kafka:1:2:3", "kafka:-1:0", "kafka:01:0",
                                   "kafka:1:40000", "kafka:99999999999999999999:0", "kafka: 1:0", "KAFKA:1:0"])
def test_other_ids_are_not_kafka_ids(other):
    assert parse_kafka_producer_id(other) is None


# -- the table ---------------------------------------------------------------------------------

def test_new_producer_starts_anywhere_then_follows_record_counts():
    table = ProducerStateTable()
    assert table.check(K(7, 0), 1234, 10) is None  # no state for pid 7: any first sequence
    write(table, K(7, 0), 1234, 10, base=0)
    with pytest.raises(OutOfOrderSequenceError):
        table.check(K(7, 0), 1235, 1)  # rayka's batch rule (last + 1) is not Kafka's
    assert table.check(K(7, 0), 1244, 3) is None
    write(table, K(7, 0), 1244, 3, base=10)
    assert table.check(K(7, 0), 1247, 1) is None


def test_each_of_the_last_five_batches_is_a_duplicate_with_its_original_offsets():
    table = ProducerStateTable()
    seq = base = 0
    written = []
    for count in (3, 1, 4, 1, 5, 9, 2):
        written.append(write(table, K(1, 0), seq, count, base, ms=base))
        seq, base = seq + count, base + count
    assert len(written) - KEEP_BATCHES == 2
    for original in written[-KEEP_BATCHES:]:
        dup = table.check(K(1, 0), original.sequence, original.count)
        assert dup == original and dup.base_offset == original.base_offset and dup.count == original.count
    for forgotten in written[:2]:  # older than every kept batch: Kafka's DUPLICATE_SEQUENCE_NUMBER
        with pytest.raises(DuplicateSequenceError):
            table.check(K(1, 0), forgotten.sequence, forgotten.count)


def test_gaps_misnumbered_and_resized_batches_are_out_of_order():
    table = ProducerStateTable()
    write(table, K(1, 0), 0, 10, base=0)
    write(table, K(1, 0), 10, 10, base=10)
    with pytest.raises(OutOfOrderSequenceError, match="expected"):
        table.check(K(1, 0), 21, 1)  # a gap: 20 expected
    with pytest.raises(OutOfOrderSequenceError):
        table.check(K(1, 0), 5, 1)  # inside a kept batch, not at its start
    with pytest.raises(OutOfOrderSequenceError, match="had 10"):
        table.check(K(1, 0), 10, 4)  # a kept base sequence with another count: not that batch
    with pytest.raises(InvalidRecordError):
        table.check(K(1, 0), KAFKA_SEQUENCE_MODULUS, 1)


def test_sequence_wraps_to_zero_after_int32_max():
    table = ProducerStateTable()
    top = KAFKA_SEQUENCE_MODULUS - 1
    first = write(table, K(3, 0), top - 5, 3, base=0)  # top-5 .. top-3
    last = write(table, K(3, 0), top - 2, 3, base=3)  # top-2 .. top
    with pytest.raises(InvalidRecordError):
        table.check(K(3, 0), KAFKA_SEQUENCE_MODULUS, 1)  # not an int32 sequence at all: no wrap there
    with pytest.raises(OutOfOrderSequenceError):
        table.check(K(3, 0), 1, 1)
    assert table.check(K(3, 0), 0, 4) is None
    wrapped = write(table, K(3, 0), 0, 4, base=6)
    assert table.check(K(3, 0), 4, 1) is None
    for original in (first, last, wrapped):  # duplicates on both sides of the wrap
        assert table.check(K(3, 0), original.sequence, original.count) == original
    # A batch ending exactly at the top wraps the same way.
    other = ProducerStateTable()
    write(other, K(4, 0), top, 1, base=0)
    assert other.check(K(4, 0), 0, 1) is None


def test_older_than_kept_across_the_wrap_is_a_duplicate():
    table = ProducerStateTable()
    seq = KAFKA_SEQUENCE_MODULUS - 3
    for i in range(KEEP_BATCHES + 1):
        write(table, K(5, 0), seq, 2, base=2 * i)
        seq = (seq + 2) % KAFKA_SEQUENCE_MODULUS
    with pytest.raises(DuplicateSequenceError):
        table.check(K(5, 0), KAFKA_SEQUENCE_MODULUS - 3, 2)


def test_a_new_epoch_starts_at_zero_and_fences_the_older_one():
    table = ProducerStateTable()
    old = write(table, K(9, 0), 0, 5, base=0)
    write(table, K(9, 0), 5, 5, base=5)
    with pytest.raises(OutOfOrderSequenceError, match="new epoch"):
        table.check(K(9, 1), 10, 1)  # a new epoch must start over at 0
    assert table.check(K(9, 1), 0, 5) is None  # seq 0 again: new, not a duplicate of epoch 0's
    bumped = write(table, K(9, 1), 0, 2, base=10)
    assert table.check(K(9, 1), 0, 2) == bumped and table.check(K(9, 1), 2, 1) is None
    for seq, count in ((10, 1), (old.sequence, old.count)):  # new batches and re-sends alike
        with pytest.raises(InvalidProducerEpochError, match="epoch 1"):
            table.check(K(9, 0), seq, count)
    assert len(table) == 1


def test_rayka_producers_keep_their_batch_rule_beside_kafka_ones():
    table = ProducerStateTable()
    # rayka's id "9" and Kafka's pid 9 are different producers.
    write(table, "9", 0, 100, base=0)
    write(table, K(9, 0), 0, 100, base=100)
    assert table.check("9", 1, 100) is None  # per batch: last + 1, whatever the count
    assert table.check(K(9, 0), 100, 1) is None
    with pytest.raises(OutOfOrderSequenceError):
        table.check("9", 100, 1)
    assert table.check("9", 0) == BatchRecord(0, 0, 100, 0)  # rayka's callers pass no count
    assert len(table) == 2


def test_snapshot_keeps_epochs_duplicates_and_rayka_producers(tmp_path):
    table = ProducerStateTable()
    write(table, K(2, 0), 0, 3, base=0)
    write(table, K(2, 4), 0, 3, base=3)
    write(table, K(2, 4), 3, 2, base=6)
    write(table, "r", 7, 1, base=8)
    table.write_snapshot(tmp_path / "s.json", 9)
    back, upto = ProducerStateTable.read_snapshot(tmp_path / "s.json", table.expiry_ms)
    assert upto == 9 and len(back) == 2
    assert back.check(K(2, 4), 3, 2) == BatchRecord(3, 6, 2, 0)
    assert back.check(K(2, 4), 5, 1) is None
    with pytest.raises(InvalidProducerEpochError):
        back.check(K(2, 3), 0, 3)
    assert back.check("r", 7) == BatchRecord(7, 8, 1, 0) and back.check("r", 8) is None


def test_expiry_and_truncation_forget_the_epoch_too():
    table = ProducerStateTable(expiry_ms=1000)
    write(table, K(1, 3), 0, 1, base=0, ms=0)
    assert table.expire(2000) == 1 and len(table) == 0
    assert table.check(K(1, 0), 77, 1) is None  # no state any more: anything goes
    write(table, K(1, 3), 0, 1, base=0)
    write(table, K(1, 3), 1, 1, base=1)
    table.truncate(1)
    assert table.check(K(1, 3), 1, 1) is None  # the truncated batch is new again
    table.truncate(0)
    assert len(table) == 0 and table.check(K(1, 0), 5, 1) is None


# -- through a partition log -------------------------------------------------------------------

def test_log_answers_a_resent_kafka_batch_with_its_original_offsets(tmp_path, clock):
    log = PartitionLog(tmp_path, clock=clock)
    first = log.append(batch([b"a", b"b", b"c"]), producer_id=K(11, 0), sequence=0)
    log.append(batch([b"other"]), producer_id="rayka-p", sequence=0)
    again = log.append(batch([b"a", b"b", b"c"]), producer_id=K(11, 0), sequence=0)
    assert again.duplicate and (again.base_offset, again.count) == (first.base_offset, first.count) == (0, 3)
    assert log.append(batch([b"d"]), producer_id=K(11, 0), sequence=3).base_offset == 4
    with pytest.raises(OutOfOrderSequenceError):
        log.append(batch([b"gap"]), producer_id=K(11, 0), sequence=9)
    log.append(batch([b"e"]), producer_id=K(11, 1), sequence=0)
    with pytest.raises(InvalidProducerEpochError):
        log.append(batch([b"zombie"]), producer_id=K(11, 0), sequence=4)
    assert read_all(log)[1] == [b"a", b"b", b"c", b"other", b"d", b"e"]


@pytest.mark.parametrize("how", ["clean", "crash", "crash, no snapshot"])
def test_kafka_producer_state_survives_restart(tmp_path, clock, how):
    """Rebuilt from the snapshot at the log end (clean close), from the snapshot written at the
    last roll plus the batch headers after it (crash), or from the headers alone."""
    config = TopicConfig(segment_bytes=2048)
    log = PartitionLog(tmp_path, config=config, clock=clock)
    log.append(batch([b"old"]), producer_id=K(5, 0), sequence=0)
    seq = 0
    for i in range(30):
        log.append(batch([b"x" * 50] * 2), producer_id=K(5, 1), sequence=seq)
        seq += 2
    assert log.segment_count > 1
    end = log.log_end_offset
    if how == "clean":
        log.close()
    else:
        crash(log)
        assert (tmp_path / "producer_state.json").exists()
        if how == "crash, no snapshot":
            (tmp_path / "producer_state.json").unlink()
    reopened = PartitionLog(tmp_path, config=config, clock=clock)
    for back in range(1, KEEP_BATCHES + 1):  # each of the last 5, with its original offsets
        dup = reopened.append(batch([b"x" * 50] * 2), producer_id=K(5, 1), sequence=seq - 2 * back)
        assert dup.duplicate and (dup.base_offset, dup.count) == (end - 2 * back, 2)
    with pytest.raises(OutOfOrderSequenceError):
        reopened.append(batch([b"gap"]), producer_id=K(5, 1), sequence=seq + 1)
    with pytest.raises(InvalidProducerEpochError):
        reopened.append(batch([b"old"]), producer_id=K(5, 0), sequence=1)
    assert reopened.append(batch([b"y"]), producer_id=K(5, 1), sequence=seq).base_offset == end
    assert reopened.log_end_offset == end + 1


def test_a_follower_copy_keeps_kafka_state_for_a_failover(tmp_path, clock):
    """append_replicated keeps pid and sequence: the follower, once it leads, answers a Kafka
    producer's retry as a duplicate and still fences its older epoch."""
    from rayka.partitions.replicated_log import ReplicaLog

    leader, follower = ReplicaLog(tmp_path / "l", clock=clock), ReplicaLog(tmp_path / "f", clock=clock)
    leader.append(batch([b"old"]), producer_id=K(8, 0), sequence=0)
    first = leader.append(batch([b"a", b"b"]), producer_id=K(8, 1), sequence=0)
    read = leader.read(0, max_records=100)
    assert follower.append_replicated(list(read.buffers)) == leader.log_end_offset == 3
    again = follower.append(batch([b"a", b"b"]), producer_id=K(8, 1), sequence=0)
    assert again.duplicate and (again.base_offset, again.count) == (first.base_offset, 2)
    with pytest.raises(InvalidProducerEpochError):
        follower.append(batch([b"old"]), producer_id=K(8, 0), sequence=1)
    assert follower.append(batch([b"c"]), producer_id=K(8, 1), sequence=2).base_offset == 3


def test_a_rayka_producer_cannot_take_a_kafka_shaped_id():
    import rayka
    from rayka.errors import ConfigError

    with pytest.raises(ConfigError, match="kafka:"):
        rayka.Producer(producer_id=kafka_producer_id(7, 0))
