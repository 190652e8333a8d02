"""The pipeline: run directory, manifest and stage records, resume, and the compress chain."""
