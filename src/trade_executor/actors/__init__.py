"""The supervisor and its actors: approval listener, executor, order pollers."""
