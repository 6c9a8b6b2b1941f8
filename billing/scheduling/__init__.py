"""Due work: what falls due when (due.py), claimed once across schedulers (service.py)."""
