"""The rules of the domain, between the web layer (and the daemon, the agents) and the TaskBuffer.

Label sets and who may submit or fetch each (``policy``), the dispatcher's codes and shared limits
(``constants``), when a claim is given back (``claims``), the Setupper hand-over (``handover``), credentials
and secrets. Modules here call the store (``pandasrv.taskbuffer``) and nothing above it; see
docs/internals.md for the layers.
"""
