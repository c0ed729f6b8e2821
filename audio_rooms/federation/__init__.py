"""Interconnection between deployments (docs/federation.md): this server's identity, signed
server-to-server requests, and which peers it talks to. Room-level federation (remote
listeners and speakers over the cascade's pipe) builds on these."""
