"""CoSeRec: contrastive learning with informative, length-aware augmentations."""

from recbole_ssl.model.cl4srec import CL4SRec


class CoSeRec(CL4SRec):
    r"""CoSeRec: Contrastive Self-supervised Sequential Recommendation with Robust
    Augmentation (Liu et al., 2021, arXiv:2108.06479).

    CL4SRec's model and loss (Eq. 15), with the informative operators ``substitute``
    and ``insert``, which use item correlations (Sec. 4.1.3,
    :mod:`recbole_ssl.data.correlation`), and length-aware operator sets (Eq. 12):
    sequences of length ``<= augment_threshold`` draw from ``short_augmentations``,
    longer ones from ``long_augmentations``. :class:`recbole_ssl.trainer.CoSeRecTrainer`
    builds the ItemCF-IUF table from the training split before training and switches
    to the hybrid correlation (Eq. 11), refreshed every epoch, after
    ``correlation_warm_up`` epochs.

    NOTE (beyond CL4SRec's):
        * ``reorder`` uses ``reorder_ratio``; the authors' code passes it the mask
          ratio.
        * The hybrid compares min-max normalised scores per item as Eq. 11 says; the
          authors' hybrid similarity was broken when the paper was written.
        * ``short_augmentations`` defaults to the paper's {S, I, M}; the authors'
          Beauty script uses all five operators for short sequences (``SIMRC``).
        * ``correlation_warm_up`` defaults to 40 epochs, inside the paper's tuning range
          ({0, ..., 100}); the authors' Beauty script uses 220 with their BCE loss,
          which converges far more slowly than the CE loss used here.
        * A substitute or insert draws from the top ``correlation_topk`` correlated
          items (1, the paper's choice, by default).
        * ``substitute_ratio`` defaults to 0.05 and ``insert_ratio`` to 0.5, from the
          authors' Beauty script. 0.05 is below the paper's tuning range for alpha,
          [0.1, 0.9] (Sec. 5.1.4; 0.1 was best on Beauty, Sec. 5.5.1) and half their
          code's default, 0.1; ``--substitute_ratio=0.1`` gives the paper's best.
        * Substitute and insert, like the other operators, apply to the sequence cut
          to ``MAX_ITEM_LIST_LENGTH`` (see CL4SRec's NOTE); the authors' code applies
          them to a longer user's whole history, then cuts.
    """

    # Everything but the defaults (CoSeRec.yaml) is CL4SRec's: the operators, the
    # correlation hook and the loss are shared, so either model runs any operator set.
