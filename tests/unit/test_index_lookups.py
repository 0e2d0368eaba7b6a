"""The sparse indexes make a read from any offset (or time) cost a lookup and one (two) intervals
of batches, not a scan of the segment: counted by instrumenting the codec."""

import pytest

from rayka.config import TopicConfig
from rayka.partitions import codec
from rayka.partitions.log import PartitionLog

from storage_helpers import batch, decode

INTERVAL = 4096
BATCHES = 1500


@pytest.fixture
def big_segment(tmp_path, clock):
    """One sealed segment of BATCHES one-record batches, reopened (nothing cached or verified)."""
    cfg = TopicConfig(index_interval_bytes=INTERVAL)
    log = PartitionLog(tmp_path, config=cfg, clock=clock)
    for i in range(BATCHES):
        log.append(batch([b"x%d" % i + b"." * 100], start_ts=1_000_000 + 10 * i))
    log.roll()
    log.close()
    log = PartitionLog(tmp_path, config=cfg, clock=clock)
    seg = log._segments[0]
    batch_bytes = (seg.size - len(log._schema_bytes)) // BATCHES
    return log, INTERVAL // batch_bytes + 2  # batches one index interval spans, and the one after


@pytest.fixture
def parsed(monkeypatch):
    """Positions of every message the codec parses and every batch it decodes."""
    seen = {"parsed": [], "decoded": []}
    read_at, decode_ = codec.read_message_at, codec.decode

    def counting_read_at(buf, position):
        seen["parsed"].append(position)
        return read_at(buf, position)

    def counting_decode(msg, schema):
        seen["decoded"].append(msg.position)
        return decode_(msg, schema)

    monkeypatch.setattr(codec, "read_message_at", counting_read_at)
    monkeypatch.setattr(codec, "decode", counting_decode)
    return seen


@pytest.mark.parametrize("offset", [BATCHES - 1, BATCHES // 2 + 3, 7])
def test_a_read_parses_one_index_interval_not_the_segment(big_segment, parsed, offset):
    log, per_interval = big_segment
    assert per_interval < BATCHES / 50  # the bound below is far from a scan
    result = log.read(offset, max_records=1)
    assert decode(result)[0] == [offset]
    assert len(parsed["parsed"]) <= per_interval


@pytest.mark.parametrize("i", [BATCHES - 2, BATCHES // 3, 1])
def test_offset_for_time_parses_two_index_intervals_and_decodes_one_batch(big_segment, parsed, i):
    """Two: the lookup starts one time-index entry early, so one damaged entry cannot hide its answer."""
    log, per_interval = big_segment
    assert log.offset_for_time(1_000_000 + 10 * i - 5) == i
    assert len(parsed["parsed"]) <= 2 * per_interval
    assert len(parsed["decoded"]) == 1
