"""recbole_ssl.data.attributes: item attributes from one or several ``.item`` fields.

S3-Rec and MMInfoRec read an item's attributes (Beauty: its categories and brand) from
the fields named by ``item_attribute``: one field or a list, each a ``token`` or
``token_seq`` field of the ``.item`` file. All fields share one attribute vocabulary,
numbered from 1 (0 is "no attribute"): field ``f``'s token ``t`` (RecBole's remapped id,
``t >= 1``) becomes ``offset_f + t``, with the offsets adding up the fields' sizes. No
real attribute gets id 0, so every attribute embedding row except row 0 trains (RecBole
core's S3Rec shifts its ids onto the padding row).
"""

import os

import torch
from recbole.utils import FeatureType

from recbole_ssl.errors import ConfigError

ATTRIBUTE_TYPES = (FeatureType.TOKEN, FeatureType.TOKEN_SEQ)


def attribute_fields(value):
    """``item_attribute`` as a list of field names; ``None``, ``''`` or ``[]`` give ``[]``.

    A string ``"[a,b]"`` (the command line's list) is the list ``["a", "b"]``."""
    if value is None or value == "" or value == []:
        return []
    if isinstance(value, str) and value.startswith("[") and value.endswith("]"):
        # the list as typed on a command line, --item_attribute=[a,b], which RecBole
        # keeps as a string (it evaluates only Python literals, ['a','b'])
        names = [n.strip().strip("'\"").strip() for n in value[1:-1].split(",")]
        return [n for n in names if n]
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError(
        f"item_attribute must be a field name or a list of field names, got {value!r}"
    )


def load_item_attributes(dataset, value, logger, model_name):
    """The :class:`ItemAttributes` a model's ``item_attribute`` (``value``) asks for.

    ``None`` when it names no field, or, with a logged warning, when the dataset has no
    ``.item`` file at all (the model then runs without attributes). A named field
    that is not loaded from an existing ``.item`` file is a :class:`ConfigError`.
    """
    fields = attribute_fields(value)
    if not fields:
        return None
    item_file = os.path.join(dataset.dataset_path, f"{dataset.dataset_name}.item")
    if not os.path.isfile(item_file):
        logger.warning(
            f"{model_name}: {dataset.dataset_name} has no .item file, so no "
            "attributes: running without them"
        )
        return None
    return ItemAttributes.from_dataset(dataset, fields)


class ItemAttributes:
    """Every item's attribute ids, padded: ``table[item]`` is ``[M]``, 0 for none.

    Attributes:
        table (torch.LongTensor): ``[n_items, M]``, row 0 (padding item) all zeros.
        n_attributes (int): real attributes; ids run from 1 to ``n_attributes``.
        fields (list of str): the fields the ids come from, in order.
    """

    def __init__(self, table, n_attributes, fields):
        self.table = table
        self.n_attributes = n_attributes
        self.fields = fields

    @classmethod
    def from_dataset(cls, dataset, fields):
        """The attributes of ``dataset``'s items from ``fields`` (see the module doc).

        Raises:
            ConfigError: a field is not a loaded ``token``/``token_seq`` field of the
                dataset's ``.item`` file.
        """
        item_file = f"{dataset.dataset_name}.item"
        item_feat = dataset.item_feat
        loaded = [] if item_feat is None else list(item_feat.columns)
        columns = []
        offset = 0
        for field in fields:
            if field not in loaded:
                raise ConfigError(
                    f"item_attribute: field {field!r} is not loaded from {item_file} "
                    f"(loaded item fields: {loaded or 'none'}); add it to "
                    f"load_col['item'] or set item_attribute to one of them"
                )
            if dataset.field2type[field] not in ATTRIBUTE_TYPES:
                raise ConfigError(
                    f"item_attribute: field {field!r} of {item_file} is "
                    f"{dataset.field2type[field].value}, expected token or token_seq"
                )
            ids = item_feat[field].long()
            ids = ids[:, None] if ids.dim() == 1 else ids
            columns.append(torch.where(ids > 0, ids + offset, torch.zeros_like(ids)))
            offset += dataset.num(field) - 1  # token 0 is RecBole's padding
        table = torch.cat(columns, dim=1) if columns else torch.zeros(0, 0)
        if columns:
            table[0] = 0  # the padding item has no attributes
        return cls(table.long(), offset, list(fields))

    @property
    def n_items(self):
        return self.table.size(0)

    def to(self, device):
        self.table = self.table.to(device)
        return self


def attribute_targets(table, items, n_attributes):
    """``[N, n_attributes]`` bool, which attributes each of ``items`` has.

    ``table`` is :attr:`ItemAttributes.table` (or a copy on another device); column
    ``j`` stands for attribute id ``j + 1``.
    """
    ids = table[items]  # [N, M]
    target = torch.zeros(
        ids.size(0), n_attributes + 1, dtype=torch.bool, device=ids.device
    )
    target.scatter_(1, ids, True)
    return target[:, 1:]
