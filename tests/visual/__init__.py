"""The visual regression suite of the export renderer: a gallery of dashboards printed by real
Chromium and checked for colliding text, text outside its card, empty plots and drift from
committed reference images. `python -m tests.visual --help`."""
