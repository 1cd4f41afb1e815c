"""Threshold alerts on widget data: rules, their evaluation, state machine and notifications."""
