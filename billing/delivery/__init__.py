"""The exactly-once bookkeeping of commands: their recorded outcomes and the outbox rows written in their transaction."""
