"""Credit notes: what they credit (pure), their writes and reads."""
