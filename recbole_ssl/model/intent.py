"""recbole_ssl.model.intent: ICLRec's intent prototypes, reusable by any sequential model.

ICLRec (Chen et al., WWW 2022) alternates an E-step, which clusters the representations
of all training sequences into ``K`` intents (Sec. 4.1.2), and an M-step, which adds the
intent contrastive loss (Eqs. 15-17) to the model's loss. :class:`IntentPrototypes` holds
the E-step's result (the centroids and each user's intent) and computes that loss.

To give another model ICL: hold an ``IntentPrototypes`` on the model, add
``icl_weight * intents.loss(view_vectors, user_ids, ...)`` to its loss once
``intents.ready``, and call ``intents.estimate(...)`` from the trainer at the start of
an epoch (see :class:`recbole_ssl.trainer.ICLRecTrainer`).
"""

import torch

from recbole_ssl.distributed import gather_from_all_ranks, process_group
from recbole_ssl.model.clustering import distributed_kmeans
from recbole_ssl.model.losses import intent_nce


class IntentPrototypes:
    """The ``K`` intent centroids and the intent of every user, from the last E-step."""

    def __init__(self, n_users, k, seed=0, niter=20):
        self.k = k
        self.seed = seed
        self.niter = niter
        self.centroids = None  # [K, H]
        self.user_intents = torch.full((n_users,), -1, dtype=torch.long)  # -1: none yet

    @property
    def ready(self):
        return self.centroids is not None

    def state(self):
        """The last E-step's result, for a checkpoint (``centroids`` None before it)."""
        return {"centroids": self.centroids, "user_intents": self.user_intents}

    def load_state(self, state, device):
        """Restore what :meth:`state` returned, on ``device``."""
        centroids = state["centroids"]
        self.centroids = None if centroids is None else centroids.to(device)
        self.user_intents = state["user_intents"].to(device)

    @torch.no_grad()
    def estimate(self, encode, item_seq, item_seq_len, user_ids, batch_size, device):
        """E-step: encode every sequence once, cluster, keep centroids and intents.

        ``encode(item_seq, item_seq_len) -> [b, H]`` is called on batches of the given
        sequences (one per user). In a distributed run each rank encodes its share and
        k-means sees all of them once, on rank 0; every rank ends with rank 0's result.
        """
        rank, world, _ = process_group() or (0, 1, None)
        mine = torch.arange(rank, len(user_ids), world)
        vectors = [
            encode(item_seq[rows].to(device), item_seq_len[rows].to(device))
            for rows in mine.split(batch_size)
        ]
        vectors = torch.cat(vectors) if vectors else torch.zeros(0, 1, device=device)
        users = gather_from_all_ranks(user_ids[mine].to(device))
        # k-means over every rank's vectors, gathered in the same rank order as users
        centroids, assignment = distributed_kmeans(
            vectors, self.k, self.seed, self.niter
        )
        self.centroids = centroids.to(device)
        self.user_intents = self.user_intents.to(device)
        self.user_intents[users] = assignment.to(device)

    def loss(self, views, user_ids, fnm=True, temperature=1.0, similarity="dot"):
        """Eq. 16 (Eq. 17 with ``fnm``) for one batch of view vectors ``[N, H]``.

        ``views[u]`` is contrasted with the centroid of user ``user_ids[u]``'s intent
        from the last E-step, against the centroids of the batch's other users.
        Averaged over the N views; a caller with two views per user adds the two
        results (Eq. 15), as :class:`recbole_ssl.model.ICLRec` does.
        """
        intent_ids = self.user_intents.to(user_ids.device)[user_ids]
        intents = self.centroids.to(views.device)[intent_ids]
        return intent_nce(
            views, intents, intent_ids if fnm else None, temperature, similarity
        )
