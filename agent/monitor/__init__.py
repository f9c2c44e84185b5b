"""Monitor: per model, the event clock, the prediction-label join, windows, their judgement
against the reference, and concept tracking."""
