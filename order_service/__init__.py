"""order-service: takes orders and runs the order flow across the other three services."""
