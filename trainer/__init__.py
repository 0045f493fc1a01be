"""lowmode trainer package."""
