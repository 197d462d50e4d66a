// Package auth is pgflex's identity provider: a directory of principals (the bootstrap
// administrator, service principals, and the service principals behind managed identities), an
// issuer of signed JWT bearer tokens with Entra ID's claims (oid, tid, aud, appid), the
// OpenID-style discovery, JWKS and token endpoints, and the verifier every API uses.
//
// Only principals with a client secret can get a token over HTTP (client credentials). Managed
// identities have no secret: their tokens come only from IssueForIdentity, an in-process call
// that pgflex's own data plane makes for the server an identity is assigned to.
package auth
