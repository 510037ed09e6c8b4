"""TrajVLM."""
