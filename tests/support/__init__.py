"""Helpers shared by integration and end-to-end tests: real processes only, never mocks."""
