"""The plugin's models, one per file; the lookups find them here by class name."""

from recbole_ssl.model.cl4srec import CL4SRec
from recbole_ssl.model.coserec import CoSeRec
from recbole_ssl.model.dssrec import DSSRec
from recbole_ssl.model.iclrec import ICLRec
from recbole_ssl.model.mminforec import MMInfoRec
from recbole_ssl.model.s3rec import S3Rec
from recbole_ssl.model.sasrec import SASRec

__all__ = ["CL4SRec", "CoSeRec", "DSSRec", "ICLRec", "MMInfoRec", "S3Rec", "SASRec"]
