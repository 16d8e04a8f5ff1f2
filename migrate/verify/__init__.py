"""`dualrun cdc verify`: the change log checked against the source database at one position."""

from migrate.verify.model import CAUSES, CdcVerification, Finding, TableVerification

__all__ = ["CAUSES", "CdcVerification", "Finding", "TableVerification"]
