"""The web dashboard (static HTML + JS served by the API) and the job plot files."""
