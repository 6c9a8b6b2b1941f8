"""Secrets at rest (encryption) and what must never reach a log (redaction)."""
