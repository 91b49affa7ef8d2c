"""Resident ingest: validation, micro-batching into the hot tier, real-time indicators, bulk import."""
