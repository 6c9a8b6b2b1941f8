"""Tax rates: Stripe's percentage taxes on invoice lines (inclusive or exclusive)."""
