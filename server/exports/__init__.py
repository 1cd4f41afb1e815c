"""Exports: dashboards rendered to a self-contained HTML page, printed by Chromium to PDF or PNG,
stored through fsspec, tracked as jobs with resumable progress."""
