"""SegmentScanner.walk: the one way through a segment's batches (reads, time lookups, the
producer-state scan and recovery), over a segment file and its index as they are on disk."""

import pytest

from rayka.config import TopicConfig
from rayka.errors import CorruptRecordError
from rayka.partitions import codec
from rayka.partitions.index import SegmentIndex
from rayka.partitions.integrity import Hole
from rayka.partitions.log import PartitionLog
from rayka.partitions.scan import SegmentScanner
from rayka.partitions.segment_file import SegmentFile

from storage_helpers import batch, flip_byte, spans

BATCHES = 40


@pytest.fixture
def segment(tmp_path, clock):
    """A closed log of one segment: BATCHES batches of 3 records (~1.3 KB), an index entry every 3."""
    log = PartitionLog(tmp_path, config=TopicConfig(index_interval_bytes=3000), clock=clock)
    for i in range(BATCHES):
        log.append(batch([b"v%d-%d" % (i, j) + b"." * 300 for j in range(3)]))
    schema_bytes = log._schema_bytes
    log.close()
    return tmp_path, schema_bytes


def _open(directory, schema_bytes):
    """(file, index, scanner) of the segment at offset 0, its index read from disk."""
    file = SegmentFile(directory, 0, schema_bytes)
    index = SegmentIndex(file.path, 3000, problem=lambda: None)
    assert index.load() and 1 < len(index) < BATCHES
    return file, index, SegmentScanner(file, index)


def _summary(steps):
    return [(type(s).__name__, s.position, s.header.base_offset if isinstance(s, codec.Message) else s.first_offset)
            for s in steps]


def test_a_walk_yields_every_batch_in_order_each_crc_checked(segment):
    file, index, scanner = _open(*segment)
    size = file.path.stat().st_size
    view = file.view(size)
    steps = list(scanner.walk(view, file.schema_size, 0, size, end_offset=3 * BATCHES))
    assert [(s.position, s.size, s.header.base_offset, s.header.next_offset) for s in steps] == spans(file.path)
    assert scanner.verified.ranges() == [(file.schema_size, size)]
    # A rescan walks the same batches.
    scanner.clear()
    assert _summary(scanner.walk(view, file.schema_size, 0, size, rescan=True)) == _summary(steps)


@pytest.mark.parametrize("offset", [0, 1, 7, 30, 3 * BATCHES - 1])
def test_batches_from_starts_at_the_index_entry_before_the_offset(segment, offset):
    file, index, scanner = _open(*segment)
    size = file.path.stat().st_size
    steps = list(scanner.batches_from(file.view(size), offset, size, 3 * BATCHES))
    entry_offset, entry_position = index.offsets.floor(offset)
    assert steps[0].position == entry_position and steps[0].header.base_offset == entry_offset
    holding = [s for s in steps if s.header.base_offset <= offset < s.header.next_offset]
    assert len(holding) == 1 and steps.index(holding[0]) < 3  # at most one interval before it
    assert steps[-1].header.next_offset == 3 * BATCHES  # and on to the end, without a break
    assert all(a.header.next_offset == b.header.base_offset for a, b in zip(steps, steps[1:]))


def test_a_damaged_batch_is_a_bounded_hole_and_the_walk_goes_on(segment):
    directory, schema_bytes = segment
    file, index, scanner = _open(directory, schema_bytes)
    batches = spans(file.path)
    position, size_, first, nxt = batches[5]
    flip_byte(file.path, position + size_ - 10)  # in the body: the CRC fails
    size = file.path.stat().st_size
    for rescan in (False, True):
        scanner.clear()
        steps = list(scanner.walk(file.view(size), file.schema_size, 0, size, end_offset=3 * BATCHES,
                                  rescan=rescan))
        holes = [s for s in steps if isinstance(s, Hole)]
        assert holes == [Hole(position, size_, first, nxt)]
        assert [s.header.base_offset for s in steps if not isinstance(s, Hole)] == \
            [b[2] for b in batches if b[2] != first]
    with pytest.raises(CorruptRecordError, match=f"offsets {first}..{nxt - 1} .* failed their checksum"):
        raise scanner.hole_error(holes[0])


def test_damage_with_nothing_valid_after_it_ends_a_rescan_and_is_bounded_by_a_read(segment):
    directory, schema_bytes = segment
    file, index, scanner = _open(directory, schema_bytes)
    position, _, first, _ = spans(file.path)[-1]
    flip_byte(file.path, position + 40)
    size = file.path.stat().st_size
    view = file.view(size)
    last = list(scanner.walk(view, file.schema_size, 0, size, rescan=True))[-1]
    assert last == Hole(position, size - position, first, None) and not last.bounded
    scanner.clear()
    last = list(scanner.walk(view, file.schema_size, 0, size, end_offset=3 * BATCHES))[-1]
    assert last == Hole(position, size - position, first, 3 * BATCHES)  # to the segment's end
    with pytest.raises(ValueError):
        next(scanner.walk(view, file.schema_size, 0, size))  # bounding needs the segment's end


def test_a_batch_out_of_sequence_is_an_index_error_but_damage_in_a_rescan(segment):
    file, index, scanner = _open(*segment)
    size = file.path.stat().st_size
    view = file.view(size)
    second = spans(file.path)[1]
    # Expecting offset 0 where the second batch (offset 3) starts: a gap, a hole of no bytes.
    steps = scanner.walk(view, second[0], 0, size, end_offset=3 * BATCHES)
    assert next(steps) == Hole(second[0], 0, 0, 3)
    # Expecting offset 6 there: the batch repeats offsets, which an index cannot explain.
    with pytest.raises(CorruptRecordError, match="starts at offset 3, expected 6"):
        next(scanner.walk(view, second[0], 6, size, end_offset=3 * BATCHES))
    step = next(scanner.walk(view, second[0], 6, size, rescan=True))
    assert isinstance(step, Hole) and step.position == second[0] and step.first_offset == 6


def test_the_walk_reloads_an_unloaded_index(segment):
    file, index, scanner = _open(*segment)
    size = file.path.stat().st_size
    index.checked()
    index.unload()
    assert not index.loaded and len(index) == 0
    steps = list(scanner.batches_from(file.view(size), 30, size, 3 * BATCHES))
    assert index.loaded and steps[0].header.base_offset == index.offsets.floor(30)[0] > 0
