"""payment-service: card charges and refunds (test-mode cards, last 4 digits stored only)."""
