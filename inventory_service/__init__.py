"""inventory-service: the product catalogue and atomic stock reservations."""
