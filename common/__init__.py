"""What every ordersim service really shares: settings, telemetry, HTTP clients, errors."""
