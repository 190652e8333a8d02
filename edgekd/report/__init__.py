"""Reports: report.json (versioned schema), report.md, and the budget verdict."""

from edgekd.report.schema import REPORT_SCHEMA_VERSION, Report
from edgekd.report.writer import EXIT_BUDGET_MISSED, EXIT_OK, judge, render_markdown

__all__ = [
    "EXIT_BUDGET_MISSED",
    "EXIT_OK",
    "REPORT_SCHEMA_VERSION",
    "Report",
    "judge",
    "render_markdown",
]
