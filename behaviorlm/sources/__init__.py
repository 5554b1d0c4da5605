"""Where behaviour data comes from: MovieLens-100K readers and the synthetic generator."""
