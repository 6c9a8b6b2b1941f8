"""The catalog domain: products and prices.

Pure rules live in `pricing.py` (what a price charges) and `validation.py` (whether a price
definition is acceptable); they do no I/O and are imported from their modules directly.
"""
