package arm

import (
	"net/url"
	"strconv"
)

// DefaultPageSize is how many items a list answer holds before it adds a nextLink.
const DefaultPageSize = 100

// Page is the body of a list answer.
type Page[T any] struct {
	Value    []T    `json:"value"`
	NextLink string `json:"nextLink,omitempty"`
}

// Paginate returns the page of items the request asks for: $top sets the page size and
// $skiptoken (an offset this function itself wrote into nextLink) where to start.
func Paginate[T any](r *Request, items []T) (Page[T], error) {
	q := r.URL.Query()
	size := DefaultPageSize
	if s := q.Get("$top"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			return Page[T]{}, BadRequest("InvalidParameter", "The value '%s' of $top is invalid: use a whole number from 1 to 1000.", s)
		}
		size = n
	}
	start := 0
	if s := q.Get("$skiptoken"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return Page[T]{}, BadRequest("InvalidParameter", "The $skiptoken '%s' is invalid.", s)
		}
		start = n
	}
	if start > len(items) {
		start = len(items)
	}
	end := min(start+size, len(items))
	page := Page[T]{Value: items[start:end]}
	if page.Value == nil {
		page.Value = []T{}
	}
	if end < len(items) {
		next := url.Values{}
		for k, v := range q {
			next[k] = v
		}
		next.Set("$skiptoken", strconv.Itoa(end))
		u := url.URL{Scheme: "https", Host: r.Host, Path: r.URL.Path, RawQuery: next.Encode()}
		page.NextLink = u.String()
	}
	return page, nil
}
