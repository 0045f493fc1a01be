"""lowmode preprocess package."""
