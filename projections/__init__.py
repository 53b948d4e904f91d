"""Read models in SQL, built only from the event log, each with its position stored atomically."""
