"""Incidents: the incident store and the Alertmanager webhook payload parser."""
