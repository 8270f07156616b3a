"""Run records: a run's folder under runs/ (run.json, config, metrics, figures, models) and how it ends."""
