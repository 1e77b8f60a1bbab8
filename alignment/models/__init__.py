"""Models: references to base models, loading, generation, the tiny base, a given base, and export."""
