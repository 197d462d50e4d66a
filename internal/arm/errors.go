package arm

import (
	"errors"
	"fmt"
	"net/http"
)

// Error is an ARM error: it carries the HTTP status and renders as
// {"error":{"code","message","target","details","additionalInfo"}}.
type Error struct {
	Status         int              `json:"-"`
	Code           string           `json:"code"`
	Message        string           `json:"message"`
	Target         string           `json:"target,omitempty"`
	Details        []*Error         `json:"details,omitempty"`
	AdditionalInfo []map[string]any `json:"additionalInfo,omitempty"`
}

func (e *Error) Error() string { return fmt.Sprintf("(%s) %s", e.Code, e.Message) }

// Errorf builds an *Error.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// BadRequest is a 400 with the given code.
func BadRequest(code, format string, args ...any) *Error {
	return Errorf(http.StatusBadRequest, code, format, args...)
}

// Conflict is a 409 with the given code.
func Conflict(code, format string, args ...any) *Error {
	return Errorf(http.StatusConflict, code, format, args...)
}

// ResourceNotFound is ARM's 404 for a provider resource.
func ResourceNotFound(id ResourceID) *Error {
	return Errorf(http.StatusNotFound, "ResourceNotFound",
		"The Resource '%s/%s' under resource group '%s' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
		id.Type(), id.Name(), id.ResourceGroup)
}

// InvalidParameter is the 400 a provider answers for a bad property value.
func InvalidParameter(target, format string, args ...any) *Error {
	e := BadRequest("InvalidParameterValue", format, args...)
	e.Target = target
	return e
}

// AsError returns err as an *Error, or nil if it is not one.
func AsError(err error) *Error {
	var ae *Error
	if errors.As(err, &ae) {
		return ae
	}
	return nil
}

// ErrorBody is the JSON envelope of an ARM error.
type ErrorBody struct {
	Error *Error `json:"error"`
}
