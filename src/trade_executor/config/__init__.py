"""Configuration: where the settings come from (env files, the environment), what each means
and how it is validated, and the domain's limits built from them (`limits`)."""
