"""Tasks that compute and store human scores and dashboard metrics (queue ``default``)."""
