"""Request and response models of the API: ``XCreate`` / ``XUpdate`` in, ``XPublic`` out.

Request models carry OpenAPI examples; their ``to_...`` methods build the service layer's
inputs, so routers only pass values along.
"""
