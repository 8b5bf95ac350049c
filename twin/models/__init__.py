"""The models the engine steps, one module (or package) each."""
