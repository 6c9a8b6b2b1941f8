"""Payments through a gateway (Stripe): payment methods, setup intents, charges, refunds.

- `gateway`: the `PaymentGateway` protocol, its result dataclasses and errors;
- `stripe_gateway`: the implementation over the official `stripe` SDK (async client);
- `card_guard`: finds card numbers in request bodies (they must never reach us);
- `webhooks`: Stripe webhook signature verification and event-to-command mapping.

Nothing here touches the database; services call these and own the unit of work.
"""
