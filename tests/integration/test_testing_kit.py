"""rayka.testing: the embedded cluster users' own tests start with."""

import pathlib

import rayka
from rayka.testing import embedded_cluster


def test_embedded_cluster_is_isolated_and_cleans_up(ray_session, tmp_path):
    with embedded_cluster(tmp_path) as cluster:
        rayka.Admin(cluster).create_topic("kit", partitions=1)
        with rayka.Producer(cluster=cluster) as p:
            assert p.send("kit", value=b"x").result(timeout=10).offset == 0
        assert pathlib.Path(cluster.data_dir).is_relative_to(tmp_path)
        name = cluster.cluster_name
    assert not (tmp_path / "data" / "topics" / "kit").exists()  # files deleted on exit
    again = rayka.connect(cluster_name=name, data_dir=tmp_path / "data")  # a fresh coordinator
    try:
        assert rayka.Admin(again).list_topics() == []
    finally:
        again.shutdown(delete_data=True)
