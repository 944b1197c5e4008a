"""recbole_ssl.model.clustering: seeded k-means with faiss, for intent prototypes.

ICLRec's E-step (Chen et al., WWW 2022, Sec. 4.1.2) clusters the representations of all
training sequences into ``K`` intents. :func:`kmeans` runs faiss' k-means (on the GPU
when the vectors are on CUDA and faiss was built with GPU support, on the CPU
otherwise) from a seeded k-means++ start, and returns torch tensors on the input's
device. In a distributed
run :func:`distributed_kmeans` gathers every rank's vectors, clusters them on rank 0 and
broadcasts the result, so all ranks hold the same centroids.
"""

import importlib

import numpy as np
import torch

from recbole_ssl.distributed import (
    broadcast_from_rank0,
    gather_from_all_ranks,
    process_group,
)
from recbole_ssl.errors import RecBoleSSLError


class ClusteringError(RecBoleSSLError):
    """Clustering cannot run as configured (e.g. more clusters than vectors)."""


def _faiss():
    """faiss, imported where k-means runs: importing the plugin's models (all of them,
    for the lookups) then needs no faiss until a model clusters."""
    return importlib.import_module("faiss")


def faiss_gpu_available():
    faiss = _faiss()
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def _check_k(k, n, key):
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n:
        raise ClusteringError(
            f"{key} is {k!r}, but k-means needs between 1 and the number of training "
            f"sequences ({n}) clusters; lower {key}"
        )


def kmeans_plus_plus(data, k, seed=0):
    """k-means++ seeding (Arthur and Vassilvitskii, 2007) of ``k`` rows of ``data``.

    Each next seed is drawn with probability proportional to its squared distance to
    the nearest seed so far, which keeps k-means out of the poor local minima that a
    uniform random start falls into (two seeds in one true cluster).
    """
    points = torch.from_numpy(data)
    generator = torch.Generator().manual_seed(seed)
    chosen = [int(torch.randint(len(points), (1,), generator=generator))]
    nearest = ((points - points[chosen[0]]) ** 2).sum(1)
    for _ in range(1, k):
        weights = nearest.double()
        if weights.sum() <= 0:  # fewer distinct points than k: any point will do
            weights = torch.ones_like(weights)
        chosen.append(int(torch.multinomial(weights, 1, generator=generator)))
        nearest = torch.minimum(nearest, ((points - points[chosen[-1]]) ** 2).sum(1))
    return np.ascontiguousarray(data[chosen])


def kmeans(vectors, k, seed=0, niter=20, key="num_intent_clusters"):
    """Cluster ``vectors`` ([n, d]) into ``k`` clusters.

    Returns ``(centroids [k, d], assignments [n])`` on the device of ``vectors``. Fails
    with :class:`ClusteringError`, naming the config ``key``, when ``k`` exceeds ``n``.
    """
    n, dim = vectors.shape
    _check_k(k, n, key)
    data = np.ascontiguousarray(vectors.detach().float().cpu().numpy())
    use_gpu = vectors.is_cuda and faiss_gpu_available()
    clustering = _faiss().Kmeans(
        dim,
        k,
        niter=niter,
        seed=seed,
        gpu=use_gpu,
        verbose=False,
        max_points_per_centroid=max(256, -(-n // k)),  # no subsampling
        min_points_per_centroid=1,  # no warning for small clusters
    )
    clustering.train(data, init_centroids=kmeans_plus_plus(data, k, seed))
    _, assignment = clustering.index.search(data, 1)
    centroids = torch.from_numpy(clustering.centroids).to(vectors.device)
    return centroids, torch.from_numpy(assignment[:, 0]).long().to(vectors.device)


def distributed_kmeans(vectors, k, seed=0, niter=20, key="num_intent_clusters"):
    """:func:`kmeans` over the vectors of all ranks, run once and shared.

    Returns ``(centroids [k, d], assignments [n_all])`` identical on every rank, with the
    assignments in the order of :func:`gather_from_all_ranks`.
    """
    everything = gather_from_all_ranks(vectors)
    group = process_group()
    if group is not None and group[0] != 0:
        _check_k(k, everything.size(0), key)  # every rank fails alike
        centroids = everything.new_zeros(k, everything.size(1), dtype=torch.float)
        assignments = torch.zeros(everything.size(0), dtype=torch.long)
        assignments = assignments.to(everything.device)
    else:  # rank 0 (or a single process) clusters; the others receive its result
        centroids, assignments = kmeans(everything, k, seed, niter, key)
    return broadcast_from_rank0(centroids), broadcast_from_rank0(assignments)
