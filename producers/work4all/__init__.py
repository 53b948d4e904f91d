"""work4all as a source: its tables, a synthetic Mandant generator and the export readers."""
