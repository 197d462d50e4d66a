// Package identity is the Microsoft.ManagedIdentity provider: user-assigned managed identities
// (Microsoft.ManagedIdentity/userAssignedIdentities) with Azure's ARM shapes, so that the
// armmsi SDK and `pgflex identity ...` work unchanged.
//
// Every identity is also a principal in pgflex's directory (auth.Principal of type
// ManagedIdentity, without a secret): it is created in the same store transaction as the
// identity and deleted in the same transaction as the identity, so its tokens stop working the
// moment the identity is gone. A re-created identity of the same name is a new principal, with
// new principal and client ids, exactly as in Azure.
//
// Nobody outside the daemon can get a token for an identity: the token endpoint refuses
// principals without a secret, and the only issuer of identity tokens is
// auth.Issuer.IssueForIdentity, an in-process call of pgflex's data plane. Other providers find
// an identity with Service.Get and ask the issuer for its token themselves.
package identity
