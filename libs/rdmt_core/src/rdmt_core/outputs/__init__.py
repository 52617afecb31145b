"""Output writers: an ECSV table and a report per file and monitor, and an overview per delivery.

Each writer takes records (:class:`FileResult`, :class:`DeliverySummary`) and a
directory and writes files; none reads the store or sends notifications.
"""

from .ecsv import metrics_table, write_ecsv
from .figures import SuperpixelMaps
from .monitor_figures import ReportFigure, report_figures
from .overview import write_overview
from .report import ReportPaths, write_report

__all__ = [
    "ReportFigure",
    "ReportPaths",
    "SuperpixelMaps",
    "metrics_table",
    "report_figures",
    "write_ecsv",
    "write_overview",
    "write_report",
]
