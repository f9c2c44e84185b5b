"""Decode: record bytes -> typed columns per model + rejected records with their reasons (the
message contract, timestamps, feature columns, the native scanner). Knows nothing of the stages
after it."""
