"""What a trained model can output: guaranteed bounds over a box of inputs, and the inputs that reach
them (issue 32; docs/bounds.md).

`model` reads a served version as float64 operations, each layer type through its entry in the
registry of relaxations; `relax` holds the element-wise ones (threshold families from their
`extremes` beside their math in `app.model.functions`, activations beside `app.model.networks.ACTIVATIONS`);
`crown` bounds a batch of boxes (interval, then backward linear bounds); `split` refines them by
branch and bound; `search` finds inputs that reach far; `milp` is the exact mode for ReLU networks;
`service` puts them together behind `:bounds` and `:optimize`.
"""
