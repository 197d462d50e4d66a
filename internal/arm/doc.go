// Package arm holds Azure Resource Manager conventions shared by every pgflex resource provider:
// resource ids, api-version checks, the ARM error body, request ids, paging with nextLink, and
// long-running operations persisted in the state store.
//
// A provider package registers its routes on a Router and answers with WriteJSON / WriteError;
// anything it returns as an *Error reaches the client in ARM's shape
// {"error":{"code","message","target","details"}}, any other error as a generic
// InternalServerError (the detail is logged, never sent, so that no secret leaks into a response).
package arm
