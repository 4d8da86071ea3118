"""The model's math, in NumPy, that the API and the workers share: the layer families and their
functions, networks (names, widths, the forward pass the API predicts with), a job's plan (its
layers), its data (synthetic targets, arrays, splits) and recurrent layers (app.model.recurrent)."""
