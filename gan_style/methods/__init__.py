"""Training methods. Each is a training state with one small interface that the one loop calls (see docs/architecture.md)."""
