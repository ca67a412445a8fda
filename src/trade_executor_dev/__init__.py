"""Development scaffolding beside the service, never imported by it: the paper bridge
(`paper`), the demo (`demo`), the throwaway PostgreSQL (`devdb`) and the in-memory store the
fast tests use (`testing`). Installed with the project; reached from the command line through
entry points (`trade_executor.cli.extensions`)."""
