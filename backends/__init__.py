"""Executors of stage graphs."""
