"""Notification channels shared by report deliveries and alerts: e-mail over SMTP and signed
webhooks. They know nothing of dashboards: a message in, an outcome per recipient out."""
