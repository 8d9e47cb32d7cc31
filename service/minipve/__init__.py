"""minipve."""
