"""Unit tests: pure logic (math, engine, uploads), no database."""
