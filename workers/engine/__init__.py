"""The training engine: job specs and arrays in, learned parameters, history and metrics out."""
