"""Representation Invariance Score (paper section 4.1): trajectory builders, feature extraction
(VISSL engine ``ris`` or torchvision models), the exact vectorised score, and reports."""
from vissl_ext.invariance.manifest import RISEntry, RISManifest, load_ris_manifest  # noqa: F401
from vissl_ext.invariance.ris import RISInputError, RISResult, compute_ris  # noqa: F401
