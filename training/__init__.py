"""Training program of the StyleColorizer (see training/README.md)."""
