"""The feature-serving API over the pipeline's Redis: reads, and asking the streaming job to stop."""
