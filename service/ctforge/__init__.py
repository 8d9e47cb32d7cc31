"""ctforge."""
