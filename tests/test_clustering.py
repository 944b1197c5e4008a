"""Seeded faiss k-means and its distributed form."""

import pytest
import torch
from conftest import on_two_ranks

from recbole_ssl.model.clustering import (
    ClusteringError,
    distributed_kmeans,
    kmeans,
)
from recbole_ssl.utils import gather_from_all_ranks


def blobs(n_per=50, seed=0):
    """Four well-separated clusters in 8 dimensions, labels in order."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.eye(4, 8) * 20
    points = centres.repeat_interleave(n_per, 0)
    points = points + torch.randn(points.shape, generator=generator)
    return points, torch.arange(4).repeat_interleave(n_per)


def test_kmeans_recovers_well_separated_clusters():
    points, labels = blobs()
    centroids, assignment = kmeans(points, 4, seed=1)
    assert centroids.shape == (4, 8) and assignment.shape == (200,)
    # the same partition, whatever the cluster numbering
    for label in range(4):
        assert assignment[labels == label].unique().numel() == 1
    assert assignment.unique().numel() == 4
    for label in range(4):
        cluster = assignment[labels == label][0]
        assert torch.allclose(
            centroids[cluster], points[labels == label].mean(0), atol=1e-3
        )


def test_kmeans_is_seeded():
    points, _ = blobs(seed=3)
    first = kmeans(points, 7, seed=5)
    again = kmeans(points, 7, seed=5)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])


@pytest.mark.parametrize("k", [0, 201])
def test_too_many_clusters_fail_naming_the_key(k):
    points, _ = blobs()
    with pytest.raises(ClusteringError, match=f"num_intent_clusters is {k}.*\\(200\\)"):
        kmeans(points, k)


def _shard_and_cluster(rank):
    points, _ = blobs()
    mine = points[:120] if rank == 0 else points[120:]  # unequal shards
    gathered = gather_from_all_ranks(mine)
    centroids, assignment = distributed_kmeans(mine, 4, seed=1)
    return gathered.tolist(), centroids.tolist(), assignment.tolist()


def test_distributed_kmeans_sees_every_vector_and_agrees_across_ranks():
    results = on_two_ranks(_shard_and_cluster)
    points, _ = blobs()
    assert results[0] == results[1]
    gathered, centroids, assignment = results[0]
    assert torch.equal(torch.tensor(gathered), points)
    expected = kmeans(points, 4, seed=1)
    assert torch.equal(torch.tensor(centroids), expected[0])
    assert assignment == expected[1].tolist()
