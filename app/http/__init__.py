"""The HTTP shell around the domains: keys and scopes, the trust boundary, middleware, error
handlers and shapes, request validation's field paths, dependencies, limits per caller and the
OpenAPI document."""
