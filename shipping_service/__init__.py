"""shipping-service: delivery quotes and shipments."""
