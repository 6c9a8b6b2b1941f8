"""Exchange rates: the pure rules (rates.py) and their rows in Postgres (service.py)."""
