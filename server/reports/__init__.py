"""Scheduled report subscriptions: schedules, the rpcs' domain, beat's claims and the delivery."""
