"""End-to-end tests: real processes, the browser, the wheel and the compose stack."""
