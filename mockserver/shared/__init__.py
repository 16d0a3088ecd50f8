"""State that must be one across processes: ``--workers N`` (an embedded SQLite store) and
replicas (``--state redis://``).  ``seam.SharedState`` is what the rest of the server sees."""
