"""The client side of ``minikubelet get|describe|logs|events|version``: kubectl's
commands for a host without kubectl, talking to the local agent's API.

``http`` owns the connection (server, token, TLS) and turns failures into the
one-line errors kubectl prints; ``tabwriter``, ``printing`` and ``describe``
are pure formatters of API objects; ``commands`` ties them to the arguments.
Nothing of the agent is imported but pure utilities: this is a client of the wire
format, as kubectl is.
"""
