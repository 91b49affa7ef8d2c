"""The hot tier: Redis streams and keys, embedded server, in-memory ring buffers."""
