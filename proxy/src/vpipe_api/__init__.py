"""The contract between the vpipe operator and the vpipe proxy, free of Kubernetes and aiohttp.

It holds the custom-resource models (Pipeline, Route), the provider family library, prerun
validation, the pure renderer and the versioned config document the proxy reads. Nothing here
does I/O on the network; the operator, the proxy and the CLI all build on it.
"""

API_GROUP = "vpipe.io"
API_VERSION = "v1alpha1"
GROUP_VERSION = f"{API_GROUP}/{API_VERSION}"
