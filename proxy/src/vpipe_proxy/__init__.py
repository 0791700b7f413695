"""The vpipe sidecar proxy: routes OpenAI-style requests through preloaded module chains.

It loads a rendered config document (`vpipe_api.document`), builds a runtime of static module
instances, and serves client traffic and a separate admin port. It never talks to the
Kubernetes API for routing decisions and never holds a secret in its config.
"""
