"""Time: the clock every rule asks (service.now_for), and Stripe's test clocks."""
