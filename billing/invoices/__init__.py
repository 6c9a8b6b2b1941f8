"""The invoices domain: invoices, their lines, numbering and totals.

Pure rules live in `status.py` (Stripe's invoice status table); they do no I/O and are
imported from their modules directly.
"""
