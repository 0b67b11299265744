"""What happens to candidates after retrieval: confidence, one passage per place, freshness."""
