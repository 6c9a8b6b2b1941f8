"""The subscriptions domain.

Pure rules, no I/O, imported from their modules directly: `periods.py` (calendar
arithmetic from a billing cycle anchor), `proration.py` (time-based credit and charge
lines), `change_rules.py` (when a plan change applies, by its direction), `status.py`
(Stripe's status machine).
"""
