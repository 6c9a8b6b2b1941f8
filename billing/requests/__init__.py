"""Pure rules on what a request may carry: input text, PATCH changes, usage requests."""
