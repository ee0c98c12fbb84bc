"""Diagnosis: detectors for training, leakage, protocol, bias, cold-start, embedding and data faults.

``diagnose(split=..., models=..., results=...)`` runs every detector that has its inputs
and returns a :class:`Diagnosis`, a list of :class:`Finding` with stable ids documented in
:data:`CATALOG`. ``recwidgets.diagnose.faults`` plants each fault on purpose and
``python -m recwidgets.diagnose.suite`` checks that every detector catches its fault.
"""

from recwidgets.diagnose.catalog import CATALOG, CatalogEntry, describe
from recwidgets.diagnose.engine import CHECK_GROUPS, Diagnosis, diagnose
from recwidgets.diagnose.finding import SEVERITIES, Finding

__all__ = ["CATALOG", "CHECK_GROUPS", "CatalogEntry", "Diagnosis", "Finding", "SEVERITIES", "describe", "diagnose"]
