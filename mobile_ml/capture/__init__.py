"""Captured samples on the server side: validation of ``POST /v1/capture`` (``ingest``), batches in object storage
(``store``), and ``mobile-ml capture export`` into a prepared-data directory (``export``)."""
