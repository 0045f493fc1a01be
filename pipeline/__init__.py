"""lowmode pipeline package."""
