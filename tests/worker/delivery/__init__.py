"""Issue 8's consumer-side delivery cases on memory:// (the same paths run against real
Kafka + Redis in tests/integration)."""
