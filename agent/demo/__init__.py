"""`driftwarden demo` and its simulated serving stack (torch stays an optional import)."""
