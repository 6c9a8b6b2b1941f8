"""Money: integer minor amounts, ISO 4217 currencies and their exponents."""
