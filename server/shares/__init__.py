"""Shares of dashboards with users and roles, and public links to published dashboards."""
