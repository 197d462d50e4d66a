package flexserver

import (
	"context"
	"net/http"
	"strings"

	"github.com/pgflex/pgflex/internal/arm"
)

// Databases are served live from the server's PostgreSQL: pgflex keeps no copy of them.

var systemDatabases = []string{"template0", "template1"}

func validateDatabaseName(name string) error {
	bad := func() error {
		return arm.InvalidParameter("name", "The database name '%s' is not valid: use 1 to 63 letters, digits, underscores or hyphens, starting with a letter or an underscore.", name)
	}
	if name == "" || len(name) > 63 {
		return bad()
	}
	for i, c := range name {
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
		if !(letter || (i > 0 && (c >= '0' && c <= '9' || c == '-'))) {
			return bad()
		}
	}
	for _, sys := range append(systemDatabases, "postgres", "azure_maintenance", "azure_sys") {
		if strings.EqualFold(name, sys) {
			return arm.InvalidParameter("name", "The database name '%s' is reserved.", name)
		}
	}
	return nil
}

func databaseView(srv *Server, db Database) map[string]any {
	return map[string]any{
		"id":         srv.ID().Child("databases", db.Name).String(),
		"name":       db.Name,
		"type":       ResourceType + "/databases",
		"properties": map[string]any{"charset": db.Charset, "collation": db.Collation},
	}
}

// readyServer loads a server whose PostgreSQL must be up for a database operation.
func (s *Service) readyServer(ctx context.Context, r *arm.Request) (*Server, error) {
	srv, err := s.load(ctx, serverIDFrom(r))
	if err != nil {
		return nil, err
	}
	if srv.State == StateInaccessible {
		return nil, inaccessible(srv, "used")
	}
	if srv.State != StateReady {
		return nil, arm.Conflict("InvalidServerState", "The server '%s' is %s; databases can be managed only while it is Ready.", srv.Name, srv.State)
	}
	return srv, nil
}

func (s *Service) listDatabases(w http.ResponseWriter, r *arm.Request) {
	srv, err := s.readyServer(r.Context(), r)
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	dbs, err := s.dp.ListDatabases(r.Context(), srv.instance())
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	views := []map[string]any{}
	for _, db := range dbs {
		views = append(views, databaseView(srv, db))
	}
	page, err := arm.Paginate(r, views)
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	arm.WriteJSON(w, http.StatusOK, page)
}

func (s *Service) findDatabase(ctx context.Context, srv *Server, name string) (*Database, error) {
	dbs, err := s.dp.ListDatabases(ctx, srv.instance())
	if err != nil {
		return nil, err
	}
	for _, db := range dbs {
		if db.Name == name {
			return &db, nil
		}
	}
	return nil, arm.ResourceNotFound(srv.ID().Child("databases", name))
}

func (s *Service) getDatabase(w http.ResponseWriter, r *arm.Request) {
	srv, err := s.readyServer(r.Context(), r)
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	db, err := s.findDatabase(r.Context(), srv, r.Param("databaseName"))
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	arm.WriteJSON(w, http.StatusOK, databaseView(srv, *db))
}

func (s *Service) createDatabase(w http.ResponseWriter, r *arm.Request) {
	srv, err := s.readyServer(r.Context(), r)
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	name := r.Param("databaseName")
	if err := validateDatabaseName(name); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	var body struct {
		Properties struct {
			Charset   string `json:"charset"`
			Collation string `json:"collation"`
		} `json:"properties"`
	}
	if err := r.Decode(&body); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	db := Database{Name: name, Charset: body.Properties.Charset, Collation: body.Properties.Collation}
	if db.Charset == "" {
		db.Charset = "UTF8"
	}
	if !strings.EqualFold(db.Charset, "UTF8") && !strings.EqualFold(db.Charset, "UTF-8") {
		arm.WriteError(w, r, arm.InvalidParameter("properties.charset", "The charset '%s' is not supported; use UTF8.", db.Charset))
		return
	}
	if existing, err := s.findDatabase(r.Context(), srv, name); err == nil {
		arm.WriteJSON(w, http.StatusOK, databaseView(srv, *existing))
		return
	}
	op := s.newOperation(srv, "flexserver/createDatabase")
	if err := s.ops.Start(r.Context(), op, func(ctx context.Context, op *arm.Operation) error {
		return s.dp.CreateDatabase(ctx, srv.instance(), db)
	}); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	arm.Accepted(w, r, op, http.StatusAccepted, nil)
}

func (s *Service) deleteDatabase(w http.ResponseWriter, r *arm.Request) {
	srv, err := s.readyServer(r.Context(), r)
	if err != nil {
		arm.WriteError(w, r, err)
		return
	}
	name := r.Param("databaseName")
	if _, err := s.findDatabase(r.Context(), srv, name); err != nil {
		if ae := arm.AsError(err); ae != nil && ae.Status == http.StatusNotFound {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		arm.WriteError(w, r, err)
		return
	}
	op := s.newOperation(srv, "flexserver/deleteDatabase")
	if err := s.ops.Start(r.Context(), op, func(ctx context.Context, op *arm.Operation) error {
		return s.dp.DropDatabase(ctx, srv.instance(), name)
	}); err != nil {
		arm.WriteError(w, r, err)
		return
	}
	arm.Accepted(w, r, op, http.StatusAccepted, nil)
}
