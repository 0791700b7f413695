"""The vpipe operator: turns Pipeline and Route resources into the config the proxies load.

It depends on `vpipe_api` for the CR models, validation and the renderer, and never on the
proxy. Decisions are pure functions (e.g. `crds` builds the CustomResourceDefinitions); the
kopf handlers only parse, call them, apply and report status.
"""
