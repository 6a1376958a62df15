"""Helper programs around scratchnet: things you run by hand, not part of the engine."""
