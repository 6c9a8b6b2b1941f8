"""The subscription schedules domain: a subscription driven through phases.

`phases.py` holds the pure rules (spans, the current phase, the next boundary, what an
update may not change); `service.py` the writes; `repository.py` the reads.
"""
