"""The `vpipe` command: a thin dispatcher over vpipe_api (offline work) and vpipe_proxy (serve)."""
