"""The running service: `run`'s wiring of the supervisor and its actors, start-up, the bridge
watch, the gauges, systemd, and the HTTP API's view of the service (`gateway`)."""
