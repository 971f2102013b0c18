"""Building and loading spoken QA corpora (data preparation, kept apart from the Hub code in `speechbert/`)."""
