"""Local stand-ins for the Worker's upstreams: an Okta custom authorization server (JWKS + token
minting) and the AWS End User Messaging SMS & Voice v2 API (SigV4 + model validation)."""
