"""CSV and XLSX files of query results, written one frame (a batch of rows) at a time."""
